package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testjob"
)

// produce writes n records "0".."n-1" (key i mod keys) to topic,
// transactionally in batches of 1000, with every fifth batch also writing
// an aborted copy that read_committed readers must never see.
func produce(t testing.TB, brokers []string, topic string, from, n, keys int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.TransactionalID(fmt.Sprintf("test-producer-%s-%d", topic, from)))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for start := from; start < from+n; start += 1000 {
		end := min(start+1000, from+n)
		passes := []bool{false}
		if (start/1000)%5 == 4 {
			passes = []bool{true, false}
		}
		for _, abort := range passes {
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			for i := start; i < end; i++ {
				v := strconv.Itoa(i)
				if abort {
					v = "aborted-" + v
				}
				cl.Produce(ctx, &kgo.Record{Key: []byte(strconv.Itoa(i % keys)), Value: []byte(v)}, func(_ *kgo.Record, err error) {
					if err != nil {
						t.Error(err)
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// readValues returns the values a read_committed consumer sees, sorted.
func readValues(t testing.TB, brokers []string, topic string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []string
	err := kafka.ReadTopic(ctx, brokers, topic, true, func(m kafka.Message[[]byte, []byte]) error {
		out = append(out, string(m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// noOpenTransactions fails unless the last stable offset equals the high
// watermark on every partition of topic.
func noOpenTransactions(t testing.TB, brokers []string, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	offs, err := kafka.TopicOffsets(ctx, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range offs {
		if o.LastStable != o.HighWatermark {
			t.Errorf("%s/%d: last stable offset %d < high watermark %d: a transaction is left open", topic, o.Partition, o.LastStable, o.HighWatermark)
		}
	}
}

func wantRange(from, n int) []string {
	out := make([]string, 0, n)
	for i := from; i < from+n; i++ {
		out = append(out, strconv.Itoa(i))
	}
	slices.Sort(out)
	return out
}

// diff describes how got differs from want (both sorted).
func diff(got, want []string) string {
	if err := testjob.Compare(got, want); err != nil {
		return err.Error()
	}
	return "no difference"
}

func newStore(t testing.TB) *fsstore.Store {
	t.Helper()
	s, err := fsstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type msg = kafka.Message[[]byte, []byte]

// passThrough is a job that copies in to out with the sink's guarantee.
func passThrough(brokers []string, name, in, out string, g kafka.Guarantee, bounded bool, p int) *engine.Job {
	return passThroughWith(brokers, name, in, out, p, func(c *kafka.SinkConfig[msg]) { c.Guarantee = g }, func(c *kafka.SourceConfig[[]byte, []byte]) { c.Bounded = bounded })
}

// passThroughWith builds a bounded exactly-once copy of in to out, adjusted
// by the option functions (of the sink, then optionally of the source).
func passThroughWith(brokers []string, name, in, out string, p int, sink func(*kafka.SinkConfig[msg]), source ...func(*kafka.SourceConfig[[]byte, []byte])) *engine.Job {
	job := engine.NewJob(name, engine.WithDefaultParallelism(p))
	sc := kafka.SourceConfig[[]byte, []byte]{
		Brokers: brokers, Topics: []string{in}, Key: kafka.Bytes{}, Value: kafka.Bytes{}, Bounded: true,
		DiscoveryInterval: 100 * time.Millisecond,
	}
	for _, f := range source {
		f(&sc)
	}
	src := kafka.Source(job, "in", sc)
	kc := kafka.SinkConfig[msg]{
		Brokers: brokers, Topic: out, Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: name,
		Key:   kafka.SerializerFunc[msg](func(_ string, m msg) ([]byte, error) { return m.Key, nil }),
		Value: kafka.SerializerFunc[msg](func(_ string, m msg) ([]byte, error) { return m.Value, nil }),
	}
	sink(&kc)
	kafka.Sink(src, "out", kc)
	return job
}
