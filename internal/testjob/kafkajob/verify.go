package kafkajob

import (
	"context"
	"fmt"
	"slices"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/internal/testjob"
)

// Report summarizes a verified output.
type Report struct {
	Inputs  int    // committed input records
	Keys    int    // distinct keys
	HotKey  string // the key with the most records
	HotN    int64  // its final count
	Outputs int    // committed output records
}

func (r Report) String() string {
	return fmt.Sprintf("%d inputs over %d keys (hot key %q: %d), %d outputs", r.Inputs, r.Keys, r.HotKey, r.HotN, r.Outputs)
}

// Oracle computes the exact expected output, sorted, from the committed
// input alone. It fails if a key's records are in more than one partition
// (then the count of a record would depend on timing).
func Oracle(ctx context.Context, brokers []string, input string, passThrough bool) ([]string, Report, error) {
	var want []string
	var rep Report
	counts := map[string]int64{}
	home := map[string]int32{}
	err := kafka.ReadTopic(ctx, brokers, input, true, func(m kafka.Message[[]byte, []byte]) error {
		k := string(m.Key)
		if p, ok := home[k]; ok && p != m.Partition {
			return fmt.Errorf("key %q is in partitions %d and %d: the input must be partitioned by key", k, p, m.Partition)
		}
		home[k] = m.Partition
		counts[k]++
		n := counts[k]
		if passThrough {
			n = 0
		}
		want = append(want, Echo{Key: k, Partition: m.Partition, Offset: m.Offset, N: n}.Encode())
		return nil
	})
	if err != nil {
		return nil, rep, fmt.Errorf("read input %s: %w", input, err)
	}
	rep.Inputs, rep.Keys = len(want), len(counts)
	for k, n := range counts {
		if n > rep.HotN || (n == rep.HotN && k < rep.HotKey) {
			rep.HotKey, rep.HotN = k, n
		}
	}
	slices.Sort(want)
	return want, rep, nil
}

// Committed returns the committed output values, sorted.
func Committed(ctx context.Context, brokers []string, output string) ([]string, error) {
	var got []string
	err := kafka.ReadTopic(ctx, brokers, output, true, func(m kafka.Message[[]byte, []byte]) error {
		got = append(got, string(m.Value))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read output %s: %w", output, err)
	}
	slices.Sort(got)
	return got, nil
}

// Verify checks the committed output against the oracle: every input echoed
// exactly once with its exact count (so every key's final count is exact),
// nothing else (no output of an aborted attempt), and no transaction left
// open on any output partition.
func Verify(ctx context.Context, brokers []string, input, output string, passThrough bool) (Report, error) {
	want, rep, err := Oracle(ctx, brokers, input, passThrough)
	if err != nil {
		return rep, err
	}
	got, err := Committed(ctx, brokers, output)
	if err != nil {
		return rep, err
	}
	rep.Outputs = len(got)
	if err := testjob.Compare(got, want); err != nil {
		return rep, err
	}
	offs, err := kafka.TopicOffsets(ctx, brokers, output)
	if err != nil {
		return rep, err
	}
	for _, o := range offs {
		if o.LastStable != o.HighWatermark {
			return rep, fmt.Errorf("output %s/%d: last stable offset %d below high watermark %d: a transaction is left open", output, o.Partition, o.LastStable, o.HighWatermark)
		}
	}
	return rep, nil
}
