package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testenv"
)

// TestConnectorMetrics runs an unbounded exactly-once copy over a backlog,
// paced so that it stays behind for a while: the source reports a lag > 0
// while behind and 0 once caught up, and the sink an open transaction
// between checkpoints and none once idle after a checkpoint.
func TestConnectorMetrics(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 2)
	out := testenv.KafkaTopic(t, brokers, "out", 2)
	const records = 6000
	produce(t, brokers, in, 0, records, 10)

	job := passThroughWith(brokers, "metrics", in, out, 1, func(*kafka.SinkConfig[msg]) {},
		func(c *kafka.SourceConfig[[]byte, []byte]) { c.Bounded, c.RatePerSecond = false, 3000 })
	ctl := engine.NewControl()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- engine.Run(ctx, job, engine.Config{Store: newStore(t), CheckpointInterval: 300 * time.Millisecond, Control: ctl})
	}()
	if err := ctl.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}

	var maxLag, maxAge int64
	// until polls the status until cond holds for the source and sink.
	until := func(what string, cond func(src, sink engine.OperatorStatus) bool) {
		t.Helper()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			st := ctl.Status()
			src, sink := operator(t, st, "in"), operator(t, st, "out")
			// Nil until the subtasks have opened their reader and writer.
			if src.SourceLagRecords != nil && sink.OpenTransactionAgeNanos != nil {
				maxLag, maxAge = max(maxLag, *src.SourceLagRecords), max(maxAge, *sink.OpenTransactionAgeNanos)
				if cond(src, sink) {
					return
				}
			}
			select {
			case <-tick.C:
			case err := <-done:
				t.Fatalf("%s: the job ended: %v", what, err)
			case <-ctx.Done():
				t.Fatalf("%s: not seen in time; last status: source %+v sink %+v", what, src, sink)
			}
		}
	}
	until("lag while behind", func(src, _ engine.OperatorStatus) bool { return *src.SourceLagRecords > 0 })
	until("an open transaction", func(_, sink engine.OperatorStatus) bool { return *sink.OpenTransactionAgeNanos > 0 })
	until("caught up", func(src, sink engine.OperatorStatus) bool {
		return sink.RecordsIn == records && *src.SourceLagRecords == 0
	})
	// No more records: the next checkpoint pre-commits the transaction and
	// none opens after it.
	until("no open transaction when idle", func(_, sink engine.OperatorStatus) bool { return *sink.OpenTransactionAgeNanos == 0 })

	t.Logf("highest lag %d records, oldest open transaction %v", maxLag, time.Duration(maxAge))
	if maxLag > 2*records { // offsets: records, aborted copies and markers
		t.Errorf("lag %d exceeds the backlog", maxLag)
	}
	if maxAge > int64(30*time.Second) {
		t.Errorf("open transaction age %v: longer than the whole test", time.Duration(maxAge))
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	// Between attempts (and after the run) there is nothing to report.
	if src := operator(t, ctl.Status(), "in"); src.SourceLagRecords != nil {
		t.Errorf("a stopped job reports lag %d", *src.SourceLagRecords)
	}
}

func operator(t *testing.T, st engine.Status, name string) engine.OperatorStatus {
	t.Helper()
	for _, o := range st.Operators {
		if o.Name == name {
			return o
		}
	}
	t.Fatalf("no operator %q in %+v", name, st.Operators)
	return engine.OperatorStatus{}
}
