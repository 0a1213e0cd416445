package engine

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/onceflow/onceflow/checkpoint"
)

// Source is a replayable input: its position is stored in checkpoints and a
// restored reader continues exactly there.
type Source[T any] interface {
	// NewReader opens the reader of one source subtask. The reader chooses
	// its splits from ctx (subtask index and parallelism, deterministically)
	// and resumes each from ctx.RestoredPositions, which holds the positions
	// of every split of the operator (so that splits can move on rescale).
	NewReader(ctx *SourceContext) (SourceReader[T], error)
}

// SourceReader reads one subtask's splits. Optional capabilities:
// WatermarkSource, CheckpointListener, MetricsReporter, io.Closer.
type SourceReader[T any] interface {
	// ReadBatch appends the next records to dst. It must return promptly
	// (within ~10 ms) when no data is available, possibly with no records,
	// so that barriers are injected on time. It returns io.EOF once a bounded
	// input is exhausted.
	ReadBatch(ctx context.Context, dst []T) ([]T, error)
	// Positions returns the position of every split after the last record
	// returned: the synchronous part of the source's snapshot.
	Positions() ([]checkpoint.SourcePosition, error)
}

// WatermarkSource reports the reader's current watermark (event time below
// which no more records will come), or ok=false if it has none yet.
type WatermarkSource interface {
	Watermark() (wm int64, ok bool)
}

// SourceContext is what a source reader knows about its subtask.
type SourceContext struct {
	Context
	restored []checkpoint.SourcePosition
}

// RestoredPositions returns every split position of the restored checkpoint.
func (c *SourceContext) RestoredPositions() []checkpoint.SourcePosition { return c.restored }

// FromSource adds a source to the job.
func FromSource[T any](j *Job, name string, src Source[T], opts ...OperatorOption) Stream[T] {
	v := j.addVertex(name, kindSource, opts)
	v.newTask = func(env *taskEnv) (taskRunner, error) {
		return &sourceTask[T]{env: env, src: src}, nil
	}
	return Stream[T]{job: j, from: []*vertex{v}}
}

// sourceTask reads records and injects barriers when the coordinator asks.
// After its input ends it stays alive, still injecting barriers, until the
// final checkpoint completes; then it ends the stream.
type sourceTask[T any] struct {
	env      *taskEnv
	src      Source[T]
	r        SourceReader[T]
	metrics  MetricsReporter // r, if it reports metrics
	out      *Output[T]
	finished bool   // the input ended
	finalID  uint64 // the final barrier injected (end of input, or stop with savepoint)
	wm       int64
	hasWM    bool
}

func (t *sourceTask[T]) run(ctx context.Context) error {
	env := t.env
	t.out = newOutput[T](ctx, env)
	sctx := &SourceContext{Context: Context{ctx: ctx, env: env}, restored: env.restored.positions}
	r, err := t.src.NewReader(sctx)
	if err != nil {
		return fmt.Errorf("open reader: %w", err)
	}
	t.r = r
	if c, ok := r.(io.Closer); ok {
		defer c.Close()
	}
	t.metrics, _ = r.(MetricsReporter)
	publishMetrics(&env.gauges, t.metrics)
	var buf []T
	for {
		for _, c := range env.mb.drain() {
			done, err := t.control(ctx, c)
			if err != nil || done {
				return err
			}
		}
		// After a final barrier (stop with savepoint) no record may follow
		// it: wait for its completion, or for its abort to resume.
		if t.finished || t.finalID != 0 {
			select {
			case <-env.mb.wake:
			case <-ctx.Done():
				return context.Cause(ctx)
			}
			continue
		}
		buf, err = r.ReadBatch(ctx, buf[:0])
		publishMetrics(&env.gauges, t.metrics)
		for i := range buf {
			t.out.Emit(buf[i])
		}
		if ferr := t.out.flush(); ferr != nil {
			return ferr
		}
		if err := t.emitWatermark(); err != nil {
			return err
		}
		switch {
		case errors.Is(err, io.EOF):
			if err := t.endOfData(ctx); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("read: %w", err)
		}
	}
}

func (t *sourceTask[T]) emitWatermark() error {
	w, ok := t.r.(WatermarkSource)
	if !ok {
		return nil
	}
	wm, ok := w.Watermark()
	if !ok || (t.hasWM && wm <= t.wm) {
		return nil
	}
	t.wm, t.hasWM = wm, true
	return t.out.watermark(wm)
}

func (t *sourceTask[T]) endOfData(ctx context.Context) error {
	t.finished = true
	if err := t.out.broadcast(message[T]{kind: msgEndOfData}); err != nil {
		return err
	}
	return t.env.att.toCoordinator(ctx, checkpoint.SourceFinished{Task: t.env.id})
}

func (t *sourceTask[T]) control(ctx context.Context, c control) (done bool, err error) {
	env := t.env
	switch c.kind {
	case ctlTrigger:
		b := c.barrier
		if err := env.att.fault(FaultSnapshot, env.id, b.ID); err != nil {
			return false, err
		}
		pos, err := t.r.Positions()
		if err != nil {
			return false, fmt.Errorf("checkpoint %d: source positions: %w", b.ID, err)
		}
		if err := t.out.barrier(b); err != nil {
			return false, err
		}
		if b.Final {
			t.finalID = b.ID
		}
		st := checkpoint.SubtaskState{Operator: env.v.name, Subtask: env.index, Positions: pos}
		return false, env.att.acknowledge(ctx, env, b, st, nil)
	case ctlComplete:
		if l, ok := t.r.(CheckpointListener); ok {
			if err := l.CheckpointComplete(c.id); err != nil {
				return false, fmt.Errorf("checkpoint %d complete: %w", c.id, err)
			}
		}
		if t.finalID != 0 && c.id >= t.finalID {
			return true, t.out.broadcast(message[T]{kind: msgEndOfStream})
		}
	case ctlAborted:
		if c.id == t.finalID {
			t.finalID = 0 // a stop-with-savepoint failed: read on
		}
		if l, ok := t.r.(CheckpointListener); ok {
			l.CheckpointAborted(c.id)
		}
	}
	return false, nil
}

// NewSourceContextForTest builds a SourceContext for unit tests of source
// readers outside a running job.
func NewSourceContextForTest(subtask, parallelism int, restored []checkpoint.SourcePosition) *SourceContext {
	env := &taskEnv{att: &attempt{job: NewJob("test")}, v: &vertex{name: "source"}, index: subtask, parallelism: parallelism}
	return &SourceContext{Context: Context{ctx: context.Background(), env: env}, restored: restored}
}
