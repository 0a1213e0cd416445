package kafka_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testenv"
)

// TestBrokerFaults runs an exactly-once copy on a three-broker cluster
// while the brokers fail produce requests, delay and fail EndTxn, report the
// coordinator unavailable, move partition leaders and coordinators, and
// fail fetches. The output must still be the input exactly once, and every
// fault must have fired.
func TestBrokerFaults(t *testing.T) {
	b := testenv.Kfake(t, devbroker.Config{Brokers: 3})
	c, brokers := b.Cluster(), b.Addrs()
	in := testenv.KafkaTopic(t, brokers, "in", 6)
	out := testenv.KafkaTopic(t, brokers, "out", 4)
	const n = 40000
	produce(t, brokers, in, 0, n, 200)

	counters := &kafka.SinkCounters{}
	restarts := &restartCount{}
	job := passThroughWith(brokers, "faults", in, out, 2, func(s *kafka.SinkConfig[msg]) { s.Counters = counters },
		func(s *kafka.SourceConfig[[]byte, []byte]) { s.RatePerSecond = n / 2 / 3 }) // about 3 s
	done := make(chan struct{})
	faults := make(chan map[string]hits, 1)
	go func() { faults <- injectBrokerFaults(c, out, counters, done) }()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 20 * time.Millisecond,
		Restart: engine.FixedDelayRestart(-1, 10*time.Millisecond), Listener: restarts})
	close(done)
	fired := <-faults
	if err != nil {
		t.Fatal(err)
	}
	if got, want := readValues(t, brokers, out), wantRange(0, n); !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
	noOpenTransactions(t, brokers, out)
	for name, h := range fired {
		if h() == 0 {
			t.Errorf("fault %q never fired", name)
		}
	}
	t.Logf("faults fired: %v; restarts: %d; transactions committed %d, recovered %d, aborted %d",
		summary(fired), restarts.n.Load(), counters.Committed.Load(), counters.Recovered.Load(), counters.Aborted.Load())
}

type hits func() int

// injectBrokerFaults waits until the job committed a few transactions, then
// installs the faults and moves leaders and coordinators until done.
func injectBrokerFaults(c *kfake.Cluster, out string, sink *kafka.SinkCounters, done <-chan struct{}) map[string]hits {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for sink.Committed.Load() < 3 {
		select {
		case <-done:
			return nil
		case <-tick.C:
		}
	}
	fired := map[string]hits{}
	add := func(name string, f kfake.Fault) {
		h := c.Fault(f)
		fired[name] = h.Hits
	}
	add("produce INVALID_RECORD", kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: out, Err: kerr.InvalidRecord, Count: 2})
	add("EndTxn COORDINATOR_NOT_AVAILABLE", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable, Count: 2})
	add("EndTxn REQUEST_TIMED_OUT (applied)", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, Count: 1})
	add("FindCoordinator COORDINATOR_NOT_AVAILABLE", kfake.Fault{Keys: []kmsg.Key{kmsg.FindCoordinator}, Err: kerr.CoordinatorNotAvailable, Count: 3})
	add("InitProducerID COORDINATOR_LOAD_IN_PROGRESS", kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.CoordinatorLoadInProgress, Count: 2})
	add("Fetch NOT_LEADER_FOR_PARTITION", kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 3})

	// EndTxn answered late: the control sleeps three of them.
	var delayed atomic.Int64
	c.ControlKey(int16(kmsg.EndTxn), func(kmsg.Request) (kmsg.Response, error, bool) {
		if delayed.Add(1) >= 3 {
			c.DropControl()
		}
		c.SleepControl(func() { time.Sleep(200 * time.Millisecond) }) // the injected latency itself
		return nil, nil, false
	})
	fired["EndTxn delayed 200ms"] = func() int { return int(min(delayed.Load(), 3)) }

	var moves atomic.Int64
	fired["leaders and coordinators moved"] = func() int { return int(moves.Load()) }
	move := time.NewTicker(150 * time.Millisecond)
	defer move.Stop()
	for {
		select {
		case <-done:
			return fired
		case <-move.C:
			c.ShufflePartitionLeaders()
			c.RehashCoordinators()
			moves.Add(1)
		}
	}
}

func summary(fired map[string]hits) map[string]int {
	out := map[string]int{}
	for k, h := range fired {
		out[k] = h()
	}
	return out
}

type restartCount struct{ n atomic.Int64 }

func (r *restartCount) CheckpointCompleted(*checkpoint.Manifest, time.Duration) {}
func (r *restartCount) CheckpointAborted(uint64, string)                        {}
func (r *restartCount) Restarting(int, error, time.Duration)                    { r.n.Add(1) }
