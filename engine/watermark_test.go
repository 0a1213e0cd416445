package engine_test

import (
	"context"
	"io"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/memstore"
	"github.com/onceflow/onceflow/engine"
)

// stepSource emits records 0..n-1 of its own series, one per batch, and a
// watermark equal to the last record times its speed: two such sources with
// different speeds give a downstream operator two different watermarks.
type stepSource struct {
	n     int64
	speed int64
}

func (s stepSource) NewReader(*engine.SourceContext) (engine.SourceReader[int64], error) {
	return &stepReader{s: s}, nil
}

type stepReader struct {
	s    stepSource
	next int64
}

func (r *stepReader) ReadBatch(_ context.Context, dst []int64) ([]int64, error) {
	if r.next >= r.s.n {
		return dst, io.EOF
	}
	r.next++
	return append(dst, r.next*r.s.speed), nil
}

func (r *stepReader) Positions() ([]checkpoint.SourcePosition, error) { return nil, nil }

func (r *stepReader) Watermark() (int64, bool) { return r.next * r.s.speed, r.next > 0 }

// wmRecorder forwards records and records every watermark it is told about.
type wmRecorder struct {
	mu  *sync.Mutex
	wms *[]int64
}

func (w wmRecorder) Open(*engine.Context) error { return nil }
func (w wmRecorder) ProcessBatch(in []int64, out *engine.Output[int64]) error {
	for _, v := range in {
		out.Emit(v)
	}
	return nil
}
func (w wmRecorder) ProcessWatermark(wm int64, _ *engine.Output[int64]) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	*w.wms = append(*w.wms, wm)
	return nil
}

type collect struct {
	mu   *sync.Mutex
	recs *[]int64
}

func (c collect) Write(_ context.Context, r []int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	*c.recs = append(*c.recs, r...)
	return nil
}

func TestUnionAndWatermarkMinimum(t *testing.T) {
	var mu sync.Mutex
	var wms, recs []int64
	job := engine.NewJob("wm")
	slow := engine.FromSource[int64](job, "slow", stepSource{n: 50, speed: 1})
	fast := engine.FromSource[int64](job, "fast", stepSource{n: 50, speed: 100})
	merged := engine.Transform(engine.Union(slow, fast), "record", func() engine.Operator[int64, int64] { return wmRecorder{&mu, &wms} })
	engine.Sink(merged, "out", func(*engine.Context) (engine.SinkWriter[int64], error) { return collect{&mu, &recs}, nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := engine.Run(ctx, job, engine.Config{Store: memstore.New(), CheckpointInterval: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 {
		t.Fatalf("union delivered %d records, want 100", len(recs))
	}
	if len(wms) == 0 || !slices.IsSorted(wms) {
		t.Fatalf("watermarks %v: want a non-empty increasing sequence", wms)
	}
	// The minimum over both inputs: until the slow source ends, the
	// watermark cannot pass its 50; after its end of data only the fast
	// source counts.
	for _, wm := range wms[:len(wms)-1] {
		if wm > 5000 || (wm > 50 && wm%100 != 0) {
			t.Fatalf("watermark %d is above the slow input's and not the fast input's after the slow one ended: %v", wm, wms)
		}
	}
	if wms[len(wms)-1] != math.MaxInt64 {
		t.Fatalf("last watermark %d, want the maximum once every input ended", wms[len(wms)-1])
	}
}
