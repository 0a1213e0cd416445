package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
)

// verifyOutput reads the input and the committed output (read_committed)
// and checks that every word's counts are exactly 1..n, n being the word's
// occurrences in the input: a lost record would leave a gap, a duplicate a
// repeated count, and a phantom a count above n. The output may lag the
// input for a while (the last checkpoint's transaction commits a checkpoint
// interval later), so it waits up to wait for it to catch up.
func verifyOutput(brokers []string, in, out string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
	want := map[string]int64{}
	var total int64
	err := kafka.ReadTopic(ctx, brokers, in, true, func(m kafka.Message[[]byte, []byte]) error {
		for _, w := range strings.Fields(string(m.Value)) {
			want[w]++
			total++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read input topic %s: %w", in, err)
	}
	deadline := time.Now().Add(wait)
	for {
		got := map[string][]int64{}
		var n int64
		err := kafka.ReadTopic(ctx, brokers, out, true, func(m kafka.Message[[]byte, []byte]) error {
			word, count, ok := strings.Cut(string(m.Value), " ")
			c, err := strconv.ParseInt(count, 10, 64)
			if !ok || err != nil {
				return fmt.Errorf("output %s/%d@%d: %q is not \"word count\"", m.Topic, m.Partition, m.Offset, m.Value)
			}
			got[word] = append(got[word], c)
			n++
			return nil
		})
		if err != nil {
			return fmt.Errorf("read output topic %s: %w", out, err)
		}
		if n >= total || time.Now().After(deadline) {
			if err := compare(want, got); err != nil {
				return fmt.Errorf("%d input words, %d committed outputs: %w", total, n, err)
			}
			fmt.Printf("wordcount: verified %d committed counts of %d words against the input: exactly once\n", n, len(want))
			return nil
		}
		time.Sleep(time.Second) // the output is still catching up; nothing to wait on but time
	}
}

func compare(want map[string]int64, got map[string][]int64) error {
	var problems []string
	for w, n := range want {
		cs := got[w]
		slices.Sort(cs)
		for i := int64(1); i <= n; i++ {
			if j, ok := slices.BinarySearch(cs, i); !ok {
				problems = append(problems, fmt.Sprintf("%s: count %d missing (lost)", w, i))
			} else if j+1 < len(cs) && cs[j+1] == i {
				problems = append(problems, fmt.Sprintf("%s: count %d twice (duplicate)", w, i))
			}
		}
		if len(cs) > 0 && cs[len(cs)-1] > n {
			problems = append(problems, fmt.Sprintf("%s: count %d but only %d in the input (phantom)", w, cs[len(cs)-1], n))
		}
	}
	for w := range got {
		if _, ok := want[w]; !ok {
			problems = append(problems, fmt.Sprintf("%s: in the output, not in the input (phantom)", w))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%d problems, e.g. %s", len(problems), strings.Join(problems[:min(5, len(problems))], "; "))
	}
	return nil
}
