package kafka_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testenv"
)

var errInjected = errors.New("injected fault")

// failMidStream returns a fault hook that fails point once, when the sink
// has written a quarter of the n records but not all (so that transactions
// with records are in flight) and committed at least minCommits
// transactions, and reports whether it did.
func failMidStream(point engine.FaultPoint, sink *kafka.SinkCounters, n, minCommits int64) (engine.FaultHook, func() bool) {
	var mu sync.Mutex
	done := false
	hook := func(p engine.FaultPoint, _ checkpoint.TaskID, _ uint64) error {
		mu.Lock()
		defer mu.Unlock()
		if w := sink.Records.Load(); p != point || done || w < n/4 || w >= n || sink.Committed.Load() < minCommits {
			return nil
		}
		done = true
		return errInjected
	}
	return hook, func() bool { mu.Lock(); defer mu.Unlock(); return done }
}

// TestCompletedButNotCommitted fails the job after checkpoints are durable
// and before the sink is told (the window where a process dies between the
// manifest and the commit), after several transactions were committed on
// the same pooled ids (so that, under KIP-890, their epochs moved on). The
// restart commits the restored transactions by producer id and epoch:
// nothing lost, nothing twice. Also against a broker without KIP-890.
func TestCompletedButNotCommitted(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		t.Run("kafka="+version, func(t *testing.T) {
			brokers := testenv.Kfake(t, devbroker.Config{KafkaVersion: version}).Addrs()
			in := testenv.KafkaTopic(t, brokers, "in", 4)
			out := testenv.KafkaTopic(t, brokers, "out", 2)
			const n = 30000
			produce(t, brokers, in, 0, n, 100)
			counters := &kafka.SinkCounters{}
			hook, fired := failMidStream(engine.FaultBeforeNotify, counters, n, 12)
			job := passThroughWith(brokers, "window", in, out, 2, func(c *kafka.SinkConfig[msg]) { c.Counters = counters },
				func(c *kafka.SourceConfig[[]byte, []byte]) { c.RatePerSecond = n / 2 / 3 }) // about 3 s
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 10 * time.Millisecond,
				Restart: engine.FixedDelayRestart(-1, 0), Faults: hook})
			if err != nil {
				t.Fatal(err)
			}
			if !fired() {
				t.Fatalf("the fault never fired: %d records written, %d transactions committed", counters.Records.Load(), counters.Committed.Load())
			}
			if counters.Recovered.Load() == 0 {
				t.Fatal("the restart recovered no transaction: the fault hit a checkpoint without output")
			}
			if got, want := readValues(t, brokers, out), wantRange(0, n); !slices.Equal(got, want) {
				t.Fatal(diff(got, want))
			}
			noOpenTransactions(t, brokers, out)
			t.Logf("committed in process: %d, recovered after the fault: %d", counters.Committed.Load(), counters.Recovered.Load())
		})
	}
}

// TestRescaleAbortsLeftovers fails a job of parallelism 3 right after its
// sinks pre-committed (prepared transactions that no checkpoint names), then
// restores it at parallelism 2: subtask 0 must also abort old subtask 2's
// transactions, and commit its restored ones.
func TestRescaleAbortsLeftovers(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 4)
	out := testenv.KafkaTopic(t, brokers, "out", 3)
	const n = 30000
	produce(t, brokers, in, 0, n, 100)
	store := newStore(t)
	counters := &kafka.SinkCounters{}
	hook, fired := failMidStream(engine.FaultPreCommit, counters, n, 0)
	build := func() *engine.Job {
		return passThroughWith(brokers, "rescale", in, out, 3, func(c *kafka.SinkConfig[msg]) { c.Counters = counters },
			func(c *kafka.SourceConfig[[]byte, []byte]) { c.RatePerSecond = n / 3 / 2 }) // about 2 s
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := engine.Run(ctx, build(), engine.Config{Store: store, CheckpointInterval: 10 * time.Millisecond,
		Restart: engine.NoRestart(), Faults: hook})
	if !errors.Is(err, errInjected) || !fired() {
		t.Fatalf("first run: %v, want the injected fault", err)
	}
	if err := engine.Run(ctx, build(), engine.Config{Store: store, CheckpointInterval: 10 * time.Millisecond, Parallelism: 2}); err != nil {
		t.Fatal(err)
	}
	if counters.Aborted.Load() == 0 {
		t.Fatal("no leftover transaction was aborted")
	}
	if got, want := readValues(t, brokers, out), wantRange(0, n); !slices.Equal(got, want) {
		t.Fatal(diff(got, want))
	}
	noOpenTransactions(t, brokers, out)
	t.Logf("recovered %d, aborted %d leftovers", counters.Recovered.Load(), counters.Aborted.Load())
}

// TestTransactionTimeoutTooShort refuses to start a sink whose transactions
// could expire before the checkpoint that commits them completes.
func TestTransactionTimeoutTooShort(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 1)
	out := testenv.KafkaTopic(t, brokers, "out", 1)
	job := passThroughWith(brokers, "short", in, out, 1, func(c *kafka.SinkConfig[msg]) { c.TransactionTimeout = 30 * time.Second })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: time.Second, CheckpointTimeout: time.Minute})
	if err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "transaction timeout 30s is too short") {
		t.Fatalf("got %v, want a permanent error about the transaction timeout", err)
	}
}

// TestExpiredTransactionFailsLoudly lets the broker expire a prepared
// transaction of a completed checkpoint before it is committed: the job must
// stop with an error that says its output is lost, never skip it.
func TestExpiredTransactionFailsLoudly(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 1)
	out := testenv.KafkaTopic(t, brokers, "out", 1)
	produce(t, brokers, in, 0, 5000, 10)
	adm, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	var once sync.Once
	stalled := false
	counters := &kafka.SinkCounters{}
	hook := func(p engine.FaultPoint, _ checkpoint.TaskID, id uint64) (err error) {
		if p != engine.FaultBeforeNotify || counters.Records.Load() < 1000 {
			return nil
		}
		once.Do(func() {
			// The coordinator stalls past the transaction timeout; the
			// broker aborts the prepared transaction meanwhile.
			stalled = waitNoOngoing(t, adm, "expire-out-")
			err = errInjected
		})
		return err
	}
	job := passThroughWith(brokers, "expire", in, out, 1, func(c *kafka.SinkConfig[msg]) {
		c.TransactionTimeout, c.RecoveryTime, c.Counters = time.Second, 100*time.Millisecond, counters
	}, func(c *kafka.SourceConfig[[]byte, []byte]) { c.RatePerSecond = 5000 })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 10 * time.Millisecond,
		CheckpointTimeout: 200 * time.Millisecond, Restart: engine.FixedDelayRestart(-1, 0), Faults: hook})
	if !stalled {
		t.Fatal("the prepared transaction never expired")
	}
	if err == nil || !engine.IsPermanent(err) || !strings.Contains(err.Error(), "aborted by the broker") {
		t.Fatalf("got %v, want a permanent error saying the transaction was aborted by the broker", err)
	}
	t.Logf("the job stopped with: %v", err)
}

// waitNoOngoing waits until no transaction whose id starts with prefix is
// ongoing, asking the broker every few milliseconds (it has no push signal).
func waitNoOngoing(t *testing.T, adm *kgo.Client, prefix string) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrListTransactionsRequest()
		req.StateFilters = []string{"Ongoing"}
		resp, err := req.RequestWith(context.Background(), adm)
		if err == nil {
			open := false
			for _, s := range resp.TransactionStates {
				open = open || strings.HasPrefix(s.TransactionalID, prefix)
			}
			if !open {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("transactions did not expire")
	return false
}
