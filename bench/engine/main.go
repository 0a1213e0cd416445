// Command engine measures the engine's record path: datagen -> keyBy ->
// count -> discard, with checkpointing off and every second, in one run, and
// reports the ratio (absolute numbers drift on shared machines; ratios hold).
//
//	go run ./bench/engine [-records 20000000] [-keys 100000] [-rounds 3] [-json out.json]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/operators"
)

type result struct {
	Scenario       string  `json:"scenario"`
	Records        uint64  `json:"records"`
	RecordsPerSec  float64 `json:"records_per_sec"`
	CPUSecPerMRec  float64 `json:"cpu_sec_per_million_records"`
	Ratio          float64 `json:"ratio_to_baseline"`
	Checkpoints    int     `json:"checkpoints"`
	MaxRSSMiB      float64 `json:"max_rss_mib"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

type event struct{ key uint64 }

type discard struct{}

func (discard) Write(context.Context, []int64) error { return nil }

func main() {
	records := flag.Uint64("records", 20_000_000, "records per measurement")
	keys := flag.Uint64("keys", 100_000, "distinct keys")
	rounds := flag.Int("rounds", 3, "measurements per scenario (the median is reported)")
	par := flag.Int("parallelism", 2, "parallelism of every operator")
	out := flag.String("json", "", "also write the results as JSON to this file")
	only := flag.String("only", "", "run only the scenario whose name contains this")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	stopProfile, err := benchkit.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	defer stopProfile()

	scenarios := []struct {
		name     string
		interval time.Duration
	}{{"checkpointing off", 0}, {"checkpoint every 1s", time.Second}}
	if *only != "" {
		for i, s := range scenarios {
			if strings.Contains(s.name, *only) {
				scenarios = scenarios[i : i+1]
				break
			}
		}
	}
	samples := make([][]result, len(scenarios))
	// Interleave the scenarios so that drift on a shared machine hits both.
	for r := 0; r < *rounds; r++ {
		for i, s := range scenarios {
			res, err := measure(s.name, s.interval, *records, *keys, *par)
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				stopProfile()
				os.Exit(1)
			}
			samples[i] = append(samples[i], res)
		}
	}
	var results []result
	for i := range scenarios {
		slices.SortFunc(samples[i], func(a, b result) int { return int(a.RecordsPerSec - b.RecordsPerSec) })
		results = append(results, samples[i][len(samples[i])/2])
	}
	for i := range results {
		results[i].Ratio = results[i].RecordsPerSec / results[0].RecordsPerSec
	}
	fmt.Printf("datagen -> keyBy -> count (memory state, %d keys, parallelism %d) -> discard; median of %d rounds\n\n", *keys, *par, *rounds)
	fmt.Println("| scenario | records | records/s | CPU s per M records | ratio to off | checkpoints | max RSS MiB |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %s | %d | %.0f | %.2f | %.3f | %d | %.0f |\n", r.Scenario, r.Records, r.RecordsPerSec, r.CPUSecPerMRec, r.Ratio, r.Checkpoints, r.MaxRSSMiB)
	}
	if *out != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(*out, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
	}
}

func measure(name string, interval time.Duration, records, keys uint64, par int) (result, error) {
	dir, err := os.MkdirTemp("", "onceflow-bench-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	store, err := fsstore.Open(dir)
	if err != nil {
		return result{}, err
	}
	job := engine.NewJob("bench", engine.WithDefaultParallelism(par))
	src := datagen.Source(job, "events", datagen.Config[event]{
		Generate: func(seq uint64) event { return event{key: seq % keys} }, Count: records, Splits: par, BatchSize: 512,
	})
	counts := operators.Aggregate(engine.KeyBy(src, func(e event) uint64 { return e.key }, state.Uint64), "count", state.Int64,
		func(acc int64, _ event) int64 { return acc + 1 }, func(_ uint64, acc int64) int64 { return acc })
	engine.Sink(counts, "discard", func(*engine.Context) (engine.SinkWriter[int64], error) { return discard{}, nil })
	cps := &listener{}
	cfg := engine.Config{Store: store, CheckpointInterval: interval, Restart: engine.NoRestart(), Listener: cps,
		Logger: quietLogger()}
	cpu0 := benchkit.CPUSeconds()
	start := time.Now()
	if err := engine.Run(context.Background(), job, cfg); err != nil {
		return result{}, fmt.Errorf("%s: %w", name, err)
	}
	elapsed := time.Since(start).Seconds()
	cpu := benchkit.CPUSeconds() - cpu0
	return result{
		Scenario: name, Records: records, RecordsPerSec: float64(records) / elapsed,
		CPUSecPerMRec: cpu / (float64(records) / 1e6), Checkpoints: cps.completed, MaxRSSMiB: benchkit.MaxRSSMiB(),
		ElapsedSeconds: elapsed,
	}, nil
}
