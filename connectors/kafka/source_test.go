package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testenv"
)

// collector is a test sink that keeps every value it is given.
type collector struct {
	mu     sync.Mutex
	values []string
}

func (c *collector) Write(_ context.Context, recs []kafka.Message[string, string]) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range recs {
		c.values = append(c.values, r.Value)
	}
	return nil
}

func (c *collector) sorted() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.values)
	slices.Sort(out)
	return out
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.values)
}

func collect(s engine.Stream[kafka.Message[string, string]], c *collector) {
	engine.Sink(s, "collect", func(*engine.Context) (engine.SinkWriter[kafka.Message[string, string]], error) { return c, nil })
}

func stringSource(brokers []string, topic string, adjust func(*kafka.SourceConfig[string, string])) (*engine.Job, *collector) {
	job := engine.NewJob("source")
	cfg := kafka.SourceConfig[string, string]{Brokers: brokers, Topics: []string{topic}, Key: kafka.String{}, Value: kafka.String{}, Bounded: true}
	adjust(&cfg)
	c := &collector{}
	collect(kafka.Source(job, "in", cfg), c)
	return job, c
}

func run(t *testing.T, job *engine.Job, cfg engine.Config) error {
	t.Helper()
	if cfg.Store == nil {
		cfg.Store = newStore(t)
	}
	if cfg.CheckpointInterval == 0 {
		cfg.CheckpointInterval = 20 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return engine.Run(ctx, job, cfg)
}

// TestStartOffsets starts fresh jobs at a time and at a group's committed
// offsets (which the first job commits after its checkpoints).
func TestStartOffsets(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.KafkaTopic(t, brokers, "in", 3)
	produce(t, brokers, topic, 0, 3000, 10)
	// Record timestamps are milliseconds: "between" must be a millisecond
	// no record of the first part was stamped in (they were all stamped
	// before now), and the second part must start there. (With both in one
	// millisecond, a time lookup found the first part's last batches.)
	between := time.Now().Truncate(time.Millisecond).Add(time.Millisecond)
	time.Sleep(time.Until(between)) // waiting for the clock, not for an event
	produce(t, brokers, topic, 3000, 2000, 10)

	counters := &kafka.SourceCounters{}
	job, c := stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) {
		s.StartOffset, s.Group, s.CommitOffsets, s.Counters = kafka.AtTime(between), "g", true, counters
	})
	if err := run(t, job, engine.Config{}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.sorted(), wantRange(3000, 2000); !slices.Equal(got, want) {
		t.Fatalf("from a time: %s", diff(got, want))
	}
	if counters.GroupCommits.Load() == 0 {
		t.Fatal("no offsets were committed to the group")
	}

	produce(t, brokers, topic, 5000, 1000, 10)
	job, c = stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) {
		s.StartOffset, s.Group = kafka.CommittedOffsets(kafka.Earliest()), "g"
	})
	if err := run(t, job, engine.Config{}); err != nil {
		t.Fatal(err)
	}
	if got, want := c.sorted(), wantRange(5000, 1000); !slices.Equal(got, want) {
		t.Fatalf("from committed offsets: %s", diff(got, want))
	}

	job, c = stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) { s.StartOffset = kafka.Latest() })
	if err := run(t, job, engine.Config{}); err != nil {
		t.Fatal(err)
	}
	if c.len() != 0 {
		t.Fatalf("a bounded job from the latest offsets read %d records", c.len())
	}
}

// TestPartitionDiscovery adds partitions while an unbounded job runs: their
// records are read from the start.
func TestPartitionDiscovery(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.KafkaTopic(t, brokers, "in", 2)
	produce(t, brokers, topic, 0, 1000, 10)
	job, c := stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) {
		s.Bounded, s.DiscoveryInterval = false, 50*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 20 * time.Millisecond, Parallelism: 2})
	}()
	waitFor(t, "the first records", func() bool { return c.len() == 1000 })
	addPartitions(t, brokers, topic, 5)
	produce(t, brokers, topic, 1000, 4000, 40)
	waitFor(t, "records of the new partitions", func() bool { return c.len() >= 5000 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if got, want := c.sorted(), wantRange(0, 5000); !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
}

func addPartitions(t *testing.T, brokers []string, topic string, total int32) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, total
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(context.Background(), cl)
	if err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create partitions: %v %v", err, resp)
	}
}

// waitFor polls cond (the job gives no signal for "has read n records").
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rejectBad fails to decode values that start with "bad".
var rejectBad = kafka.DeserializerFunc[string](func(_ string, b []byte) (string, error) {
	if strings.HasPrefix(string(b), "bad") {
		return "", errors.New("not a number")
	}
	return string(b), nil
})

func produceWithBad(t *testing.T, brokers []string, topic string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for i := 0; i < 1000; i++ {
		v := strconv.Itoa(i)
		if i%100 == 7 {
			v = "bad-" + v
		}
		recs = append(recs, &kgo.Record{Value: []byte(v), Partition: 0})
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// TestBadRecords: by default an undecodable record fails the job naming
// where it is; with a dead-letter topic it is routed there with headers
// saying why, counted, and the job goes on.
func TestBadRecords(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.KafkaTopic(t, brokers, "in", 1)
	dlq := testenv.KafkaTopic(t, brokers, "dlq", 1)
	produceWithBad(t, brokers, topic)

	job, _ := stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) { s.Value = rejectBad })
	err := run(t, job, engine.Config{Restart: engine.NoRestart()})
	want := fmt.Sprintf("topic %s partition 0 offset 7", topic)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error naming %q", err, want)
	}

	counters := &kafka.SourceCounters{}
	job, c := stringSource(brokers, topic, func(s *kafka.SourceConfig[string, string]) {
		s.Value, s.OnBadRecord, s.DeadLetterTopic, s.Counters = rejectBad, kafka.DeadLetterBadRecord, dlq, counters
	})
	if err := run(t, job, engine.Config{}); err != nil {
		t.Fatal(err)
	}
	if c.len() != 990 || counters.DeadLettered.Load() != 10 {
		t.Fatalf("%d good records, %d dead letters; want 990 and 10", c.len(), counters.DeadLettered.Load())
	}
	var letters []string
	err = kafka.ReadTopic(context.Background(), brokers, dlq, true, func(m kafka.Message[[]byte, []byte]) error {
		h := map[string]string{}
		for _, x := range m.Headers {
			h[x.Key] = string(x.Value)
		}
		if h[kafka.HeaderTopic] != topic || h[kafka.HeaderPartition] != "0" || !strings.Contains(h[kafka.HeaderError], "not a number") {
			return fmt.Errorf("dead letter %q has headers %v", m.Value, h)
		}
		letters = append(letters, h[kafka.HeaderOffset]+"="+string(m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 10 || letters[0] != "7=bad-7" {
		t.Fatalf("dead letters %v", letters)
	}
}

// TestIdlePartitionWatermark: a partition that never receives a record must
// not hold the watermark back once it is idle.
func TestIdlePartitionWatermark(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.KafkaTopic(t, brokers, "in", 2)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i := 0; i < 100; i++ {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Partition: 0, Timestamp: time.UnixMilli(int64(1000 + i*10))}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	job := engine.NewJob("wm")
	src := kafka.Source(job, "in", kafka.SourceConfig[string, string]{Brokers: brokers, Topics: []string{topic}, Value: kafka.String{},
		MaxOutOfOrderness: 5 * time.Millisecond, IdleTimeout: 100 * time.Millisecond})
	wm := &watermarkProbe{}
	collect(engine.Transform(src, "probe", func() engine.Operator[kafka.Message[string, string], kafka.Message[string, string]] { return wm }), &collector{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		errc <- engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 50 * time.Millisecond})
	}()
	// Partition 0's newest timestamp is 1990; partition 1 is idle.
	waitFor(t, "the watermark", func() bool { return wm.max.Load() >= 1990-5-1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

type watermarkProbe struct{ max atomic.Int64 }

func (p *watermarkProbe) Open(*engine.Context) error { return nil }
func (p *watermarkProbe) ProcessBatch(in []kafka.Message[string, string], out *engine.Output[kafka.Message[string, string]]) error {
	for _, m := range in {
		out.Emit(m)
	}
	return nil
}
func (p *watermarkProbe) ProcessWatermark(wm int64, _ *engine.Output[kafka.Message[string, string]]) error {
	p.max.Store(wm)
	return nil
}
