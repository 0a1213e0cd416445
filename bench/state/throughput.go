package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/operators"
)

type event struct{ key uint64 }

type discard struct{}

func (discard) Write(context.Context, []int64) error { return nil }

type completions struct{ n int }

func (c *completions) CheckpointCompleted(*checkpoint.Manifest, time.Duration) { c.n++ }
func (c *completions) CheckpointAborted(uint64, string)                        {}
func (c *completions) Restarting(int, error, time.Duration)                    {}

// throughput runs the keyed count (datagen -> keyBy -> count -> discard,
// parallelism 1, a checkpoint every second) over *keys keys with each
// backend, interleaved, and reports the median and the ratio.
func throughput(dir string) error {
	backends := []struct {
		name string
		f    func(round int) state.Factory
	}{
		{"memory", func(int) state.Factory { return state.Memory }},
		{"pebble", func(round int) state.Factory {
			return pebblestate.New(pebblestate.Options{Dir: filepath.Join(dir, fmt.Sprint("pebble-", round)), Logger: quietLogger(), WriteCacheSize: 256 << 20})
		}},
	}
	type res struct{ rps, cpu float64 }
	samples := make([][]res, len(backends))
	cps := make([]int, len(backends))
	for r := 0; r < *rounds; r++ {
		for i, b := range backends {
			rps, cpu, n, err := countJob(filepath.Join(dir, fmt.Sprint("store-", r, "-", i)), b.f(r))
			if err != nil {
				return fmt.Errorf("%s: %w", b.name, err)
			}
			samples[i] = append(samples[i], res{rps, cpu})
			cps[i] += n
			fmt.Fprintf(os.Stderr, "round %d %s: %.0f records/s\n", r, b.name, rps)
		}
	}
	fmt.Printf("keyed count, %d keys, %d records, parallelism 1, checkpoint every 1s; median of %d rounds\n\n", *keys, *records, *rounds)
	fmt.Println("| backend | records/s | CPU s per M records | ratio to memory | checkpoints (all rounds) |")
	fmt.Println("|---|---:|---:|---:|---:|")
	var base float64
	for i, b := range backends {
		slices.SortFunc(samples[i], func(a, b res) int { return int(a.rps - b.rps) })
		m := samples[i][len(samples[i])/2]
		if i == 0 {
			base = m.rps
		}
		fmt.Printf("| %s | %.0f | %.2f | %.3f | %d |\n", b.name, m.rps, m.cpu, m.rps/base, cps[i])
	}
	return nil
}

func countJob(storeDir string, f state.Factory) (rps, cpuPerM float64, checkpoints int, err error) {
	store, err := fsstore.Open(storeDir)
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(storeDir)
	n := uint64(*keys)
	job := engine.NewJob("bench", engine.WithDefaultParallelism(1))
	src := datagen.Source(job, "events", datagen.Config[event]{
		// A multiplicative hash spreads consecutive records over the keys.
		Generate: func(seq uint64) event { return event{key: (seq * 0x9e3779b97f4a7c15 >> 20) % n} },
		Count:    *records, Splits: 1, BatchSize: 512,
	})
	counts := operators.Aggregate(engine.KeyBy(src, func(e event) uint64 { return e.key }, state.Uint64), "count", state.Int64,
		func(acc int64, _ event) int64 { return acc + 1 }, func(_ uint64, acc int64) int64 { return acc })
	engine.Sink(counts, "discard", func(*engine.Context) (engine.SinkWriter[int64], error) { return discard{}, nil })
	c := &completions{}
	cfg := engine.Config{Store: store, CheckpointInterval: time.Second, Restart: engine.NoRestart(), Listener: c,
		Logger: quietLogger(), StateBackend: f}
	cpu0 := benchkit.CPUSeconds()
	start := time.Now()
	if err := engine.Run(context.Background(), job, cfg); err != nil {
		return 0, 0, 0, err
	}
	elapsed := time.Since(start).Seconds()
	return float64(*records) / elapsed, (benchkit.CPUSeconds() - cpu0) / (float64(*records) / 1e6), c.n, nil
}
