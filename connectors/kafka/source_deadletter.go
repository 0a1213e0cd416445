package kafka

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// badRecordError names the record a deserializer rejected.
type badRecordError struct {
	rec  *kgo.Record
	what string // "key" or "value"
	err  error
}

func (e *badRecordError) Error() string {
	return fmt.Sprintf("deserialize %s of record at topic %s partition %d offset %d: %v",
		e.what, e.rec.Topic, e.rec.Partition, e.rec.Offset, e.err)
}

func (e *badRecordError) Unwrap() error { return e.err }

// Headers that a dead letter carries to say where it came from and why.
const (
	HeaderError     = "onceflow.error"
	HeaderTopic     = "onceflow.source.topic"
	HeaderPartition = "onceflow.source.partition"
	HeaderOffset    = "onceflow.source.offset"
)

// deadLetters writes bad records to the dead-letter topic.
type deadLetters struct {
	topic    string
	cl       *kgo.Client
	res      *results
	counters *SourceCounters
	pending  bool
}

func newDeadLetters[K, V any](cfg *SourceConfig[K, V]) (*deadLetters, error) {
	cl, err := newClient(cfg.Brokers, cfg.ClientOptions, kgo.DefaultProduceTopic(cfg.DeadLetterTopic))
	if err != nil {
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &deadLetters{topic: cfg.DeadLetterTopic, cl: cl, res: newResults(), counters: cfg.Counters}, nil
}

func (d *deadLetters) send(rec *kgo.Record, cause error) {
	out := &kgo.Record{Topic: d.topic, Key: rec.Key, Value: rec.Value, Timestamp: rec.Timestamp}
	out.Headers = append(out.Headers, rec.Headers...)
	out.Headers = append(out.Headers,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(cause.Error())},
		kgo.RecordHeader{Key: HeaderTopic, Value: []byte(rec.Topic)},
		kgo.RecordHeader{Key: HeaderPartition, Value: strconv.AppendInt(nil, int64(rec.Partition), 10)},
		kgo.RecordHeader{Key: HeaderOffset, Value: strconv.AppendInt(nil, rec.Offset, 10)},
	)
	d.cl.Produce(context.Background(), out, d.res.promise)
	d.pending = true
	if d.counters != nil {
		d.counters.DeadLettered.Add(1)
	}
}

// flush waits until every dead letter is written.
func (d *deadLetters) flush(ctx context.Context) error {
	if !d.pending {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := d.cl.Flush(ctx); err != nil {
		return fmt.Errorf("flush dead letters to %s: %w", d.topic, err)
	}
	if err := d.res.failed(); err != nil {
		return fmt.Errorf("dead letter to %s: %w", d.topic, err)
	}
	d.pending = false
	return nil
}

func (d *deadLetters) close() { d.cl.Close() }
