package datagen

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// readAll drains one reader, taking positions after the first batch.
func readAll(t *testing.T, r engine.SourceReader[uint64]) (all []uint64, afterFirst []checkpoint.SourcePosition, firstLen int) {
	ctx := context.Background()
	for i := 0; ; i++ {
		batch, err := r.ReadBatch(ctx, nil)
		all = append(all, batch...)
		if i == 0 {
			var perr error
			afterFirst, perr = r.Positions()
			if perr != nil {
				t.Fatal(perr)
			}
			firstLen = len(all)
		}
		if errors.Is(err, io.EOF) {
			return all, afterFirst, firstLen
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestSplitsAndResume(t *testing.T) {
	src := &source[uint64]{cfg: Config[uint64]{Generate: func(s uint64) uint64 { return s }, Count: 1000, Splits: 3, BatchSize: 64}}
	var everything []uint64
	for sub := 0; sub < 2; sub++ {
		r, err := src.NewReader(engine.NewSourceContextForTest(sub, 2, nil))
		if err != nil {
			t.Fatal(err)
		}
		all, pos, n := readAll(t, r)
		everything = append(everything, all...)
		// A reader restored from the positions after the first batch
		// yields exactly the rest.
		r2, err := src.NewReader(engine.NewSourceContextForTest(sub, 2, pos))
		if err != nil {
			t.Fatal(err)
		}
		// Order holds within a split, not across the subtask's splits.
		rest, _, _ := readAll(t, r2)
		want := slices.Clone(all[n:])
		slices.Sort(rest)
		slices.Sort(want)
		if !slices.Equal(rest, want) {
			t.Fatalf("subtask %d: resumed %d records, want %d", sub, len(rest), len(all)-n)
		}
	}
	slices.Sort(everything)
	for i, v := range everything {
		if v != uint64(i) {
			t.Fatalf("record %d is %d: splits must cover every seq exactly once", i, v)
		}
	}
	if len(everything) != 1000 {
		t.Fatalf("%d records", len(everything))
	}
}

func TestBadRestoredPosition(t *testing.T) {
	src := &source[uint64]{cfg: Config[uint64]{Generate: func(s uint64) uint64 { return s }}}
	for _, p := range []checkpoint.SourcePosition{{Split: "partition-3", Position: []byte{1}}, {Split: "split-0", Position: []byte{0x80}}} {
		if _, err := src.NewReader(engine.NewSourceContextForTest(0, 1, []checkpoint.SourcePosition{p})); err == nil {
			t.Fatalf("position %+v accepted", p)
		}
	}
}
