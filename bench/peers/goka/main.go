// Command goka is the goka peer of Onceflow's benchmark suite: the keyed
// count of the suite's throughput worker (bench/suite, "keyed count, Pebble
// state, exactly-once") written as a goka processor, on the same embedded
// broker with the same input, so that the two can be compared in one run.
//
//	cd bench/peers/goka && go run . [-records 4000000] [-keys 1000000]
//
// It starts the embedded broker (devbroker, kfake with a data directory, as
// the suite does) in this process, writes the input, runs one goka
// processor instance until every input has its output, verifies the output
// against the same oracle as the suite (internal/testjob/kafkajob) and
// prints one JSON result in the suite's shape.
//
// This is a module of its own (go.mod here) so that goka, Sarama and
// LevelDB never enter the engine's go.mod.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

const scenario = "goka keyed count, at-least-once, LevelDB (bench/peers/goka)"

// result is one row of bench/suite's output (the same JSON shape).
type result struct {
	Scenario       string  `json:"scenario"`
	Records        int     `json:"records"`
	RecordsPerSec  float64 `json:"records_per_sec,omitempty"`
	CPUSecPerMRec  float64 `json:"cpu_sec_per_million_records,omitempty"`
	MaxRSSMiB      float64 `json:"max_rss_mib,omitempty"`
	ElapsedSeconds float64 `json:"elapsed_seconds,omitempty"`
	Note           string  `json:"note,omitempty"`
}

func main() {
	records := flag.Int("records", 4_000_000, "input records")
	keys := flag.Int("keys", 1_000_000, "distinct keys of the input (the count's state size)")
	valueSize := flag.Int("value-size", 100, "bytes per input value")
	partitions := flag.Int("partitions", 4, "partitions of the input, output and group table topics")
	verify := flag.Bool("verify", true, "check every output (and so every key's final count) against the input")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the processor run (not the input writing) to this file")
	flag.Parse()
	res, err := run(*records, *keys, *valueSize, int32(*partitions), *verify, *cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/peers/goka:", err)
		os.Exit(1)
	}
	// A list of one, as bench/suite's workers print.
	if err := json.NewEncoder(os.Stdout).Encode([]result{res}); err != nil {
		fmt.Fprintln(os.Stderr, "bench/peers/goka:", err)
		os.Exit(1)
	}
}

func run(records, keys, valueSize int, partitions int32, verify bool, cpuProfile string) (result, error) {
	dir, err := os.MkdirTemp("", "onceflow-bench-goka-")
	if err != nil {
		return result{}, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	b, err := devbroker.Start(devbroker.Config{DataDir: filepath.Join(dir, "kafka")})
	if err != nil {
		return result{}, fmt.Errorf("start embedded broker: %w", err)
	}
	defer b.Close()
	brokers := b.Addrs()
	ctx := context.Background()

	const in, out = "goka-in", "goka-out"
	// goka creates only its group table; the streams it reads and emits to
	// are ours to create.
	for _, t := range []string{in, out} {
		if err := kafka.CreateTopic(ctx, brokers, t, partitions); err != nil {
			return result{}, fmt.Errorf("create topic: %w", err)
		}
	}
	if err := benchkit.WriteInput(ctx, brokers, in, records, keys, valueSize); err != nil {
		return result{}, fmt.Errorf("write input: %w", err)
	}

	m, err := runCount(ctx, brokers, in, out, records, filepath.Join(dir, "leveldb"), cpuProfile)
	if err != nil {
		return result{}, fmt.Errorf("goka keyed count: %w", err)
	}
	note := fmt.Sprintf("one processor instance, %d partitions", partitions)
	if extra := m.outputs - int64(records); extra > 0 || m.generations > 1 {
		note += fmt.Sprintf("; %d rebalances, %d inputs processed again (at-least-once)", m.generations-1, extra)
	}
	if verify {
		reprocessed, err := verifyOutput(ctx, brokers, in, out, records)
		if err != nil {
			return result{}, fmt.Errorf("verify output against the input: %w", err)
		}
		if int64(reprocessed) != m.outputs-int64(records) {
			return result{}, fmt.Errorf("verify output: %d reprocessed outputs, but %d outputs for %d inputs", reprocessed, m.outputs, records)
		}
		note += "; verified"
	}
	// Records/s are of inputs: what was processed twice counts once.
	return result{Scenario: scenario, Records: records, RecordsPerSec: float64(records) / m.elapsed.Seconds(),
		CPUSecPerMRec: m.cpuSeconds / (float64(records) / 1e6), MaxRSSMiB: benchkit.MaxRSSMiB(), ElapsedSeconds: m.elapsed.Seconds(),
		Note: note}, nil
}
