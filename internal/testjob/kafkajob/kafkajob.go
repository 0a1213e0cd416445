// Package kafkajob is the Kafka keyed count shared by the Kafka SIGKILL
// test, the kafkacount example and the benchmark: Kafka -> KeyBy -> per-key
// count -> Kafka, exactly once, with an oracle computed from the input topic
// alone (Verify).
//
// Every output record echoes one input record, named by its partition and
// offset, with its key's count after it. Input keys are partitioned by key,
// so each key's records are in one partition in offset order and the count
// of every input record is known in advance, whatever the parallelism and
// the failures.
package kafkajob

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
)

// Options shape the job.
type Options struct {
	Name          string // job name; default "kafkacount"
	Brokers       []string
	Input, Output string
	// TxnPrefix is the sink's transactional id prefix; default the job name
	// and the output topic.
	TxnPrefix   string
	Parallelism int // default parallelism of every operator; default 2
	// Bounded stops at the end of the input present at the first start.
	Bounded bool
	// RatePerSecond limits each source subtask; 0 is unlimited.
	RatePerSecond float64
	// Guarantee of the sink; default exactly once.
	Guarantee kafka.Guarantee
	// PassThrough skips the count: every input is echoed with count 0
	// (the benchmark's pass-through job).
	PassThrough bool
	// SourceCounters, if set, count what the source reads (the benchmark
	// measures from a point in the input on).
	SourceCounters *kafka.SourceCounters
}

// Echo is one output record.
type Echo struct {
	Key       string
	Partition int32
	Offset    int64
	N         int64
}

// Encode is the output value: "key partition offset count".
func (e Echo) Encode() string { return string(e.Append(nil)) }

// Append appends the output value to b.
func (e Echo) Append(b []byte) []byte {
	b = append(b, e.Key...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(e.Partition), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Offset, 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, e.N, 10)
}

// Decode parses an output value.
func Decode(s string) (Echo, error) {
	f := strings.Fields(s)
	if len(f) != 4 {
		return Echo{}, fmt.Errorf("output %q: want \"key partition offset count\"", s)
	}
	p, err1 := strconv.ParseInt(f[1], 10, 32)
	o, err2 := strconv.ParseInt(f[2], 10, 64)
	n, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Echo{}, fmt.Errorf("output %q: want \"key partition offset count\"", s)
	}
	return Echo{Key: f[0], Partition: int32(p), Offset: o, N: n}, nil
}

type msg = kafka.Message[string, []byte]

// Build returns the job.
func Build(o Options) *engine.Job {
	if o.Name == "" {
		o.Name = "kafkacount"
	}
	if o.TxnPrefix == "" {
		o.TxnPrefix = o.Name + "-" + o.Output
	}
	if o.Parallelism == 0 {
		o.Parallelism = 2
	}
	job := engine.NewJob(o.Name, engine.WithDefaultParallelism(o.Parallelism))
	in := kafka.Source(job, "in", kafka.SourceConfig[string, []byte]{
		Brokers: o.Brokers, Topics: []string{o.Input}, Key: kafka.String{}, Value: kafka.Bytes{},
		Bounded: o.Bounded, RatePerSecond: o.RatePerSecond, Counters: o.SourceCounters,
	})
	var echoes engine.Stream[Echo]
	if o.PassThrough {
		echoes = engine.Transform(in, "echo", func() engine.Operator[msg, Echo] { return echoOp{} })
	} else {
		byKey := engine.KeyBy(in, func(m msg) string { return m.Key }, state.String)
		echoes = engine.TransformKeyed(byKey, "count", func() engine.KeyedOperator[string, msg, Echo] { return &counter{} })
	}
	kafka.Sink(echoes, "out", kafka.SinkConfig[Echo]{
		Brokers: o.Brokers, Topic: o.Output, Guarantee: o.Guarantee, TransactionalIDPrefix: o.TxnPrefix,
		Key:   kafka.AppendSerializerFunc[Echo](func(dst []byte, _ string, e Echo) ([]byte, error) { return append(dst, e.Key...), nil }),
		Value: kafka.AppendSerializerFunc[Echo](func(dst []byte, _ string, e Echo) ([]byte, error) { return e.Append(dst), nil }),
	})
	return job
}

type counter struct{ n *state.Value[int64] }

func (c *counter) Open(ctx *engine.Context) (err error) {
	c.n, err = state.NewValue(ctx.State(), "n", state.Int64)
	return err
}

func (c *counter) Process(key string, m msg, out *engine.Output[Echo]) error {
	n, _, err := c.n.Get()
	if err != nil {
		return err
	}
	n++
	if err := c.n.Set(n); err != nil {
		return err
	}
	out.Emit(Echo{Key: key, Partition: m.Partition, Offset: m.Offset, N: n})
	return nil
}

type echoOp struct{}

func (echoOp) Open(*engine.Context) error { return nil }
func (echoOp) ProcessBatch(in []msg, out *engine.Output[Echo]) error {
	for _, m := range in {
		out.Emit(Echo{Key: m.Key, Partition: m.Partition, Offset: m.Offset})
	}
	return nil
}
