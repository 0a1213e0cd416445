package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/engine"
)

// plainWriter produces without transactions (idempotently, so client
// retries never duplicate). As a Flusher it gives at-least-once delivery.
type plainWriter[T any] struct {
	name string
	cl   *kgo.Client
	b    recordBuilder[T]
	res  *results
}

// noGuaranteeWriter hides Flush, so barriers do not wait for Kafka.
type noGuaranteeWriter[T any] struct{ w *plainWriter[T] }

func newPlainWriter[T any](ctx *engine.Context, cfg *SinkConfig[T]) (engine.SinkWriter[T], error) {
	cl, err := newClient(cfg.Brokers, cfg.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("kafka sink %q: %w", ctx.Operator(), err)
	}
	w := &plainWriter[T]{name: ctx.Operator(), cl: cl, b: recordBuilder[T]{cfg: cfg}, res: newResults()}
	if cfg.Guarantee == NoGuarantee {
		return &noGuaranteeWriter[T]{w: w}, nil
	}
	return w, nil
}

func (w *plainWriter[T]) Write(ctx context.Context, records []T) error {
	// An earlier asynchronous failure fails the job at the next write
	// instead of waiting for the barrier.
	if err := w.res.failed(); err != nil {
		return err
	}
	sl, err := w.b.buildAll(records, w.res)
	if err != nil {
		return err
	}
	for i := range sl.recs {
		w.cl.Produce(ctx, &sl.recs[i], sl.promise)
	}
	if c := w.b.cfg.Counters; c != nil {
		c.Records.Add(int64(len(records)))
	}
	return nil
}

// Flush waits for every record produced so far: after it returns they are
// durable, so the checkpoint may cover them.
func (w *plainWriter[T]) Flush(ctx context.Context) error {
	if err := w.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return w.res.failed()
}

func (w *plainWriter[T]) Close() error {
	w.cl.Close()
	return nil
}

func (n *noGuaranteeWriter[T]) Write(ctx context.Context, records []T) error {
	return n.w.Write(ctx, records)
}

// Close delivers what is buffered when the job ends normally; it is bounded
// so that a dead broker cannot hold the job.
func (n *noGuaranteeWriter[T]) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := n.w.cl.Flush(ctx)
	n.w.cl.Close()
	if err != nil {
		return fmt.Errorf("kafka sink %q: flush at close: %w", n.w.name, err)
	}
	return nil
}
