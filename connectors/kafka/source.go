package kafka

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/engine"
)

// StartOffset is where a partition is read from when no checkpoint says
// where. The zero value is Earliest.
type StartOffset struct {
	kind     startKind
	at       time.Time
	fallback startKind
}

type startKind int

const (
	startEarliest startKind = iota
	startLatest
	startTime
	startCommitted
)

// Earliest starts at the first record the broker still has.
func Earliest() StartOffset { return StartOffset{kind: startEarliest} }

// Latest starts after the last record present when the job first starts.
func Latest() StartOffset { return StartOffset{kind: startLatest} }

// AtTime starts at the first record whose timestamp is at or after t (at the
// end if there is none).
func AtTime(t time.Time) StartOffset { return StartOffset{kind: startTime, at: t} }

// CommittedOffsets starts at the offsets committed by the source's Group,
// and where the group has none, at Earliest or Latest (fallback).
func CommittedOffsets(fallback StartOffset) StartOffset {
	return StartOffset{kind: startCommitted, fallback: fallback.kind}
}

func (s StartOffset) String() string {
	switch s.kind {
	case startEarliest:
		return "earliest"
	case startLatest:
		return "latest"
	case startTime:
		return "time " + s.at.UTC().Format(time.RFC3339Nano)
	case startCommitted:
		return "committed offsets, else " + StartOffset{kind: s.fallback}.String()
	}
	return "unknown"
}

// BadRecordPolicy is what the source does with a record its deserializers
// reject.
type BadRecordPolicy int

const (
	// FailOnBadRecord (the default) fails the job with an error naming the
	// topic, partition and offset; the job restarts from its checkpoint and
	// fails again until the record is dealt with.
	FailOnBadRecord BadRecordPolicy = iota
	// DeadLetterBadRecord writes the raw record to DeadLetterTopic with
	// headers describing the error and goes on. Dead letters are flushed at
	// every checkpoint (at-least-once: a replay after a failure may write a
	// bad record twice).
	DeadLetterBadRecord
)

// SourceCounters are counted by a source's readers, for tests and metrics.
type SourceCounters struct {
	Records      atomic.Int64 // records emitted
	DeadLettered atomic.Int64 // bad records written to the dead-letter topic
	GroupCommits atomic.Int64 // offset commits to the group after checkpoints
	CommitErrors atomic.Int64 // failed group commits (monitoring only, never fatal)
}

// SourceConfig configures a source of Message[K, V]. Fields document their
// defaults; Validate reports every mistake at once.
type SourceConfig[K, V any] struct {
	// Brokers is the seed list, host:port. Required.
	Brokers []string
	// Topics to read. Required.
	Topics []string
	// Key decodes record keys; nil leaves Message.Key at its zero value.
	Key Deserializer[K]
	// Value decodes record values. Required.
	Value Deserializer[V]
	// StartOffset is where partitions start when the job has no checkpoint
	// (and for topics added to Topics since). Partitions discovered while
	// running, or created since the checkpoint, start at Earliest: all
	// their records are new. Default Earliest.
	StartOffset StartOffset
	// ReadUncommitted also reads records of open and aborted transactions.
	// Default false: read_committed.
	ReadUncommitted bool
	// Group is the consumer group whose offsets CommittedOffsets starts
	// from and CommitOffsets writes. The source never joins the group.
	Group string
	// CommitOffsets commits the positions of each completed checkpoint to
	// Group, so that lag tools see the job's progress. Correctness never
	// depends on them: a restore uses the checkpoint.
	CommitOffsets bool
	// Bounded stops each partition at its end offset found when the job
	// first started (stored in checkpoints, so a restart stops at the same
	// place; a restored unbounded position gets the end at restore); the
	// job then finishes. A partition ends when a record at or after its end
	// offset arrives or its position reaches it, so on a compacted topic
	// whose last records below the end were removed, or one whose last
	// records are aborted data interleaved with a transaction still open,
	// the source waits for the next record. Default: unbounded.
	Bounded bool
	// DiscoveryInterval between looks for partitions added to the topics.
	// Default 30s; negative disables discovery. Bounded sources never
	// discover.
	DiscoveryInterval time.Duration
	// MaxOutOfOrderness is how far record timestamps of one partition may
	// go back: a partition's watermark trails its newest timestamp by it.
	// Default 0.
	MaxOutOfOrderness time.Duration
	// IdleTimeout after which a partition without records stops holding
	// back the watermark: its watermark then follows the wall clock (minus
	// IdleTimeout and MaxOutOfOrderness). Default 30s; negative disables.
	IdleTimeout time.Duration
	// OnBadRecord chooses what happens to undecodable records. Default
	// FailOnBadRecord.
	OnBadRecord BadRecordPolicy
	// DeadLetterTopic receives bad records under DeadLetterBadRecord.
	DeadLetterTopic string
	// BatchSize is the most records one read returns. Default 1024.
	BatchSize int
	// RatePerSecond limits the records each subtask emits (for backfills
	// that must not flood the job, and tests); 0 means unlimited.
	RatePerSecond float64
	// Counters, if set, are updated by every reader of the source.
	Counters *SourceCounters
	// ClientOptions are extra franz-go options (TLS, SASL, fetch sizes...),
	// applied after the source's own.
	ClientOptions []kgo.Opt
}

// Validate reports every invalid setting.
func (c *SourceConfig[K, V]) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no brokers"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("no topics"))
	}
	seen := map[string]bool{}
	for _, t := range c.Topics {
		if t == "" || seen[t] {
			errs = append(errs, fmt.Errorf("topic %q: empty or listed twice", t))
		}
		seen[t] = true
	}
	if c.Value == nil {
		errs = append(errs, errors.New("no Value deserializer"))
	}
	if c.StartOffset.kind < startEarliest || c.StartOffset.kind > startCommitted {
		errs = append(errs, errors.New("unknown start offset"))
	}
	if (c.StartOffset.kind == startCommitted || c.CommitOffsets) && c.Group == "" {
		errs = append(errs, errors.New("committed offsets need a Group"))
	}
	switch c.OnBadRecord {
	case FailOnBadRecord:
	case DeadLetterBadRecord:
		if c.DeadLetterTopic == "" {
			errs = append(errs, errors.New("dead-lettering needs a DeadLetterTopic"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown bad record policy %d", int(c.OnBadRecord)))
	}
	if c.MaxOutOfOrderness < 0 {
		errs = append(errs, fmt.Errorf("max out-of-orderness %v: must not be negative", c.MaxOutOfOrderness))
	}
	if c.BatchSize < 0 || c.RatePerSecond < 0 {
		errs = append(errs, fmt.Errorf("batch size %d and rate %g: must not be negative", c.BatchSize, c.RatePerSecond))
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid kafka source config: %w", errors.Join(errs...))
	}
	return nil
}

func (c *SourceConfig[K, V]) withDefaults() SourceConfig[K, V] {
	d := *c
	if d.DiscoveryInterval == 0 {
		d.DiscoveryInterval = 30 * time.Second
	}
	if d.Bounded {
		d.DiscoveryInterval = -1
	}
	if d.IdleTimeout == 0 {
		d.IdleTimeout = 30 * time.Second
	}
	if d.BatchSize == 0 {
		d.BatchSize = 1024
	}
	return d
}

// Source adds a source named name that reads cfg.Topics.
func Source[K, V any](j *engine.Job, name string, cfg SourceConfig[K, V], opts ...engine.OperatorOption) engine.Stream[Message[K, V]] {
	return engine.FromSource(j, name, &source[K, V]{name: name, cfg: cfg}, opts...)
}

type source[K, V any] struct {
	name string
	cfg  SourceConfig[K, V]
}

func (s *source[K, V]) NewReader(ctx *engine.SourceContext) (engine.SourceReader[Message[K, V]], error) {
	if err := s.cfg.Validate(); err != nil {
		return nil, engine.Permanent(fmt.Errorf("kafka source %q: %w", s.name, err))
	}
	cfg := s.cfg.withDefaults()
	r, err := newReader(ctx, s.name, &cfg)
	if err != nil {
		return nil, fmt.Errorf("kafka source %q subtask %d: %w", s.name, ctx.Subtask(), err)
	}
	return r, nil
}
