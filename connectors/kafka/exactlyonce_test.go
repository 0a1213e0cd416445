package kafka_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testenv"
)

// TestExactlyOncePassThrough copies a topic written with committed and
// aborted transactions through a bounded job with an exactly-once sink:
// the output is the committed input, once, and no transaction stays open.
func TestExactlyOncePassThrough(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 4)
	out := testenv.KafkaTopic(t, brokers, "out", 3)
	const n = 20000
	produce(t, brokers, in, 0, n, 100)
	for _, p := range []int{1, 3} {
		out := out
		if p > 1 {
			out = testenv.KafkaTopic(t, brokers, "out", 3)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := engine.Run(ctx, passThrough(brokers, "pass", in, out, kafka.ExactlyOnce, true, p),
			engine.Config{Store: newStore(t), CheckpointInterval: 20 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("p=%d: %v", p, err)
		}
		if got, want := readValues(t, brokers, out), wantRange(0, n); !slices.Equal(got, want) {
			t.Fatalf("p=%d: %s", p, diff(got, want))
		}
		noOpenTransactions(t, brokers, out)
	}
}

// TestWeakerGuarantees copies a topic with the at-least-once and the
// no-guarantee sinks: without failures, both deliver everything once.
func TestWeakerGuarantees(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "in", 2)
	const n = 5000
	produce(t, brokers, in, 0, n, 10)
	for _, g := range []kafka.Guarantee{kafka.AtLeastOnce, kafka.NoGuarantee} {
		out := testenv.KafkaTopic(t, brokers, "out", 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := engine.Run(ctx, passThrough(brokers, "weak", in, out, g, true, 2),
			engine.Config{Store: newStore(t), CheckpointInterval: 20 * time.Millisecond})
		cancel()
		if err != nil {
			t.Fatalf("%v: %v", g, err)
		}
		if got, want := readValues(t, brokers, out), wantRange(0, n); !slices.Equal(got, want) {
			t.Fatalf("%v: %s", g, diff(got, want))
		}
	}
}
