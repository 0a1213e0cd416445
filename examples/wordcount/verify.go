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

// verifyOutput checks the committed output (read_committed) against the
// input. It reads the output first and the input second, so that the input
// read covers everything the output was computed from even while a load
// generator keeps writing. Every word's counts must then be exactly 1..k
// with k at most its occurrences n in the input: a lost record leaves a
// gap, a duplicate repeats a count, a phantom exceeds n. Once the output has
// caught up (k == n for every word) the output is exact. With exact, it
// waits up to wait for that; otherwise a consistent output that still lags
// the input (the input is still arriving) passes too, and says so.
func verifyOutput(brokers []string, in, out string, wait time.Duration, exact bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait+time.Minute)
	defer cancel()
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
		want := map[string]int64{}
		var total int64
		err = kafka.ReadTopic(ctx, brokers, in, true, func(m kafka.Message[[]byte, []byte]) error {
			for _, w := range strings.Fields(string(m.Value)) {
				want[w]++
				total++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("read input topic %s: %w", in, err)
		}
		if err := compare(want, got); err != nil {
			return fmt.Errorf("%d input words, %d committed outputs: %w", total, n, err)
		}
		if n == total {
			fmt.Printf("wordcount: verified %d committed counts of %d words against the input: exactly once\n", n, len(want))
			return nil
		}
		if time.Now().After(deadline) {
			if exact {
				return fmt.Errorf("the committed output (%d counts) has not caught up with the input (%d words) after %s; no loss, duplicate or phantom so far", n, total, wait)
			}
			fmt.Printf("wordcount: no loss, duplicate or phantom in %d committed counts; the output lags the input by %d words (input still arriving?)\n", n, total-n)
			return nil
		}
		time.Sleep(time.Second) // the output is still catching up; nothing to wait on but time
	}
}

// compare checks that every word's counts are exactly 1..k, k <= want.
func compare(want map[string]int64, got map[string][]int64) error {
	var problems []string
	for w, cs := range got {
		slices.Sort(cs)
		for i, c := range cs {
			switch {
			case c != int64(i+1) && i > 0 && c == cs[i-1]:
				problems = append(problems, fmt.Sprintf("%s: count %d twice (duplicate)", w, c))
			case c != int64(i+1):
				problems = append(problems, fmt.Sprintf("%s: count %d missing (lost)", w, i+1))
			}
			if c != int64(i+1) {
				break
			}
		}
		if n := want[w]; len(cs) > 0 && cs[len(cs)-1] > n {
			problems = append(problems, fmt.Sprintf("%s: count %d but only %d in the input (phantom)", w, cs[len(cs)-1], n))
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("%d problems, e.g. %s", len(problems), strings.Join(problems[:min(5, len(problems))], "; "))
	}
	return nil
}
