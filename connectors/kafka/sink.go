package kafka

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/engine"
)

// Guarantee is the delivery guarantee of a sink.
type Guarantee int

const (
	// AtLeastOnce (the default) flushes on every checkpoint barrier and
	// waits for every produce result: after a failure, records since the
	// last checkpoint are written again (duplicates, never loss).
	AtLeastOnce Guarantee = iota
	// ExactlyOnce writes into Kafka transactions committed when the
	// checkpoint completes: a read_committed consumer sees every record
	// exactly once, after the checkpoint that covers it.
	ExactlyOnce
	// NoGuarantee produces without waiting at checkpoints: records
	// buffered in the client when the job fails are lost.
	NoGuarantee
)

func (g Guarantee) String() string {
	switch g {
	case AtLeastOnce:
		return "at-least-once"
	case ExactlyOnce:
		return "exactly-once"
	case NoGuarantee:
		return "none"
	}
	return fmt.Sprintf("Guarantee(%d)", int(g))
}

// SinkConfig configures a sink writing records of type T. Fields document
// their defaults; Validate reports every mistake at once.
type SinkConfig[T any] struct {
	// Brokers is the seed list, host:port. Required.
	Brokers []string
	// Topic receives every record unless TopicOf is set. One of the two is
	// required.
	Topic string
	// TopicOf, if set, chooses each record's topic.
	TopicOf func(T) string
	// Key serializes the record key; records with the same key go to the
	// same partition (murmur2, as the Java client). Nil: no key, records
	// are spread over partitions.
	Key Serializer[T]
	// Value serializes the record value. Required.
	Value Serializer[T]
	// Headers, if set, returns headers for each record.
	Headers func(T) []Header
	// Timestamp, if set, returns each record's timestamp; by default the
	// time the sink received the record's batch (in milliseconds).
	Timestamp func(T) time.Time

	// Guarantee is the delivery guarantee. Default AtLeastOnce.
	Guarantee Guarantee
	// TransactionalIDPrefix identifies the job's transactions; required for
	// ExactlyOnce and must be unique per job on the cluster: two jobs with
	// one prefix fence and abort each other's transactions.
	TransactionalIDPrefix string
	// TransactionTimeout after which the broker aborts an uncommitted
	// transaction. It must exceed the longest a prepared transaction may
	// wait for its commit (checked at start, see CheckpointTiming) and must
	// not exceed the broker's transaction.max.timeout.ms (default 15m).
	// Default 10m.
	TransactionTimeout time.Duration
	// RecoveryTime is how long a restarted job takes, beyond the restart
	// delay, to get back to recovering its transactions; it enters the
	// transaction timeout check. Default 1m.
	RecoveryTime time.Duration
	// PoolSize is the number of transactional ids per subtask. Steady state
	// needs three (one open, one prepared, one committed waiting for a
	// later checkpoint before reuse), and uses a fourth when free: its
	// producer is initialized ahead for the next transaction. Each
	// consecutively failed checkpoint holds one more. Default: 4 + the
	// job's tolerable checkpoint failures, at least 8.
	PoolSize int
	// CommitTimeout bounds the retries of one commit, abort or listing
	// request while a coordinator is unavailable or moving; the attempt
	// then fails and the job restarts. Default 1m.
	CommitTimeout time.Duration

	// Counters, if set, are updated by every writer of the sink.
	Counters *SinkCounters

	// ClientOptions are extra franz-go options (TLS, SASL, batching...),
	// applied after the sink's own. Options that break the guarantee (such
	// as a TransactionalID or disabling idempotence) must not be set.
	ClientOptions []kgo.Opt
}

// SinkCounters are counted by a sink's writers, for tests and metrics.
type SinkCounters struct {
	Records   atomic.Int64 // records handed to the client
	Committed atomic.Int64 // transactions committed after their checkpoint completed
	Recovered atomic.Int64 // restored transactions committed by Recover (including already committed ones)
	Aborted   atomic.Int64 // transactions left open by earlier attempts and aborted by Recover
}

// Validate reports every invalid setting.
func (c *SinkConfig[T]) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if c.Topic == "" && c.TopicOf == nil {
		errs = append(errs, errors.New("neither Topic nor TopicOf is set"))
	}
	if c.Value == nil {
		errs = append(errs, errors.New("no Value serializer"))
	}
	switch c.Guarantee {
	case AtLeastOnce, NoGuarantee:
	case ExactlyOnce:
		if c.TransactionalIDPrefix == "" {
			errs = append(errs, errors.New("exactly-once needs a TransactionalIDPrefix unique to the job"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown guarantee %d", int(c.Guarantee)))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"transaction timeout", c.TransactionTimeout}, {"recovery time", c.RecoveryTime}, {"commit timeout", c.CommitTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", d.name, d.v))
		}
	}
	if c.PoolSize < 0 || (c.PoolSize > 0 && c.PoolSize < 3) {
		errs = append(errs, fmt.Errorf("pool size %d: must be at least 3 (0 for the default)", c.PoolSize))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid kafka sink config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *SinkConfig[T]) withDefaults(timing engine.CheckpointTiming) SinkConfig[T] {
	d := *c
	if d.TransactionTimeout == 0 {
		d.TransactionTimeout = 10 * time.Minute
	}
	if d.RecoveryTime == 0 {
		d.RecoveryTime = time.Minute
	}
	if d.CommitTimeout == 0 {
		d.CommitTimeout = time.Minute
	}
	if d.PoolSize == 0 {
		d.PoolSize = max(8, 4+timing.TolerableFailures)
	}
	return d
}

// checkTransactionTimeout refuses a transaction timeout that a prepared
// transaction can outlive: it opens up to one interval (plus pause) before
// its barrier, waits up to the checkpoint timeout for its checkpoint, and
// through every tolerated failed checkpoint after it; after a crash it waits
// for the restart delay and the recovery.
func checkTransactionTimeout(timeout, recovery time.Duration, t engine.CheckpointTiming) error {
	cycle := t.Interval + t.MinPause + t.Timeout
	need := time.Duration(t.TolerableFailures+1)*cycle + t.MaxRestartDelay + recovery
	if timeout > need {
		return nil
	}
	return fmt.Errorf("transaction timeout %v is too short: a prepared transaction may wait %v for its commit "+
		"((%d tolerable checkpoint failures + 1) x (interval %v + min pause %v + checkpoint timeout %v) + restart delay %v + recovery time %v), "+
		"and a transaction the broker aborts before it is committed is lost output; raise TransactionTimeout (and the broker's transaction.max.timeout.ms) or shorten the checkpoint timeout",
		timeout, need, t.TolerableFailures, t.Interval, t.MinPause, t.Timeout, t.MaxRestartDelay, recovery)
}

// Sink adds a sink named name that writes s to Kafka.
func Sink[T any](s engine.Stream[T], name string, cfg SinkConfig[T], opts ...engine.OperatorOption) {
	engine.Sink(s, name, func(ctx *engine.Context) (engine.SinkWriter[T], error) {
		if err := cfg.Validate(); err != nil {
			return nil, engine.Permanent(fmt.Errorf("kafka sink %q: %w", name, err))
		}
		timing := ctx.CheckpointTiming()
		c := cfg.withDefaults(timing)
		if c.Guarantee != ExactlyOnce {
			return newPlainWriter(ctx, &c)
		}
		if err := checkTransactionTimeout(c.TransactionTimeout, c.RecoveryTime, timing); err != nil {
			return nil, engine.Permanent(fmt.Errorf("kafka sink %q: %w", name, err))
		}
		return newTxnWriter(ctx, &c)
	}, opts...)
}

// serialize encodes v with s, into buf when s can append. It returns the
// encoding and buf.
func serialize[T any](s Serializer[T], topic string, v T, buf []byte) ([]byte, []byte, error) {
	a, ok := s.(AppendSerializer[T])
	if !ok {
		b, err := s.Serialize(topic, v)
		return b, buf, err
	}
	start := len(buf)
	buf, err := a.AppendSerialize(buf, topic, v)
	if err != nil {
		return nil, buf[:start], err
	}
	// Capped, so that a later append cannot write into this record's bytes.
	return buf[start:len(buf):len(buf)], buf, nil
}

func (b *recordBuilder[T]) build(v T, r *kgo.Record, buf []byte, now time.Time) ([]byte, error) {
	c := b.cfg
	topic := c.Topic
	if c.TopicOf != nil {
		topic = c.TopicOf(v)
	}
	r.Topic = topic
	var err error
	if c.Key != nil {
		if r.Key, buf, err = serialize(c.Key, topic, v, buf); err != nil {
			return buf, fmt.Errorf("serialize key for topic %s: %w", topic, err)
		}
	}
	if r.Value, buf, err = serialize(c.Value, topic, v, buf); err != nil {
		return buf, fmt.Errorf("serialize value for topic %s: %w", topic, err)
	}
	if c.Headers != nil {
		for _, h := range c.Headers(v) {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	r.Timestamp = now
	if c.Timestamp != nil {
		r.Timestamp = c.Timestamp(v)
	}
	return buf, nil
}
