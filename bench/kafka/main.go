// Command kafka measures Kafka -> Kafka throughput on one broker with one
// input, in one run: a raw franz-go consume-and-produce loop (at-least-once:
// it flushes every second, the baseline), then Onceflow jobs with
// checkpoints every second: an exactly-once pass-through, an at-least-once
// pass-through and an exactly-once keyed count. It reports each as a ratio
// to the baseline (absolute numbers drift on shared machines; ratios hold).
//
// With no -brokers it runs an embedded broker (kfake, data in a temporary
// directory) in the same process: it then competes with the job for the
// CPU, as it does with the baseline.
//
//	go run ./bench/kafka [-records 4000000] [-rounds 3] [-brokers host:port] [-json out.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

type result struct {
	Scenario       string  `json:"scenario"`
	Records        int     `json:"records"`
	RecordsPerSec  float64 `json:"records_per_sec"`
	CPUSecPerMRec  float64 `json:"cpu_sec_per_million_records"`
	Ratio          float64 `json:"ratio_to_baseline"`
	Checkpoints    int     `json:"checkpoints"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

type scenario struct {
	name   string
	run    func(ctx context.Context, env *env, out string) (checkpoints int, err error)
	verify func(ctx context.Context, env *env, out string) error
}

// env is what every scenario shares: the broker and the input.
type env struct {
	brokers    []string
	in         string
	records    int
	partitions int32
	par        int
	dir        string
}

func main() {
	records := flag.Int("records", 4_000_000, "input records")
	keys := flag.Int("keys", 100_000, "distinct keys of the input")
	valueSize := flag.Int("value-size", 100, "bytes per input value")
	partitions := flag.Int("partitions", 4, "partitions of the input and output topics")
	par := flag.Int("parallelism", 2, "parallelism of every operator of the jobs")
	rounds := flag.Int("rounds", 3, "measurements per scenario (the median is reported)")
	brokerList := flag.String("brokers", "", "seed brokers of an existing cluster; empty runs an embedded broker")
	verify := flag.Bool("verify", true, "check the exactly-once outputs of the first round against the input")
	only := flag.String("only", "", "run only the baseline and the scenarios whose name contains this")
	out := flag.String("json", "", "also write the results as JSON to this file")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	stopProfile, err := benchkit.StartCPUProfile(*cpuProfile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/kafka:", err)
		os.Exit(1)
	}
	defer stopProfile()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(*records, *keys, *valueSize, int32(*partitions), *par, *rounds, *brokerList, *verify, *only, *out); err != nil {
		stopProfile()
		fmt.Fprintln(os.Stderr, "bench/kafka:", err)
		os.Exit(1)
	}
}

func run(records, keys, valueSize int, partitions int32, par, rounds int, brokerList string, verify bool, only, jsonOut string) error {
	dir, err := os.MkdirTemp("", "onceflow-bench-kafka-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	brokers := strings.Split(brokerList, ",")
	if brokerList == "" {
		b, err := devbroker.Start(devbroker.Config{DataDir: dir + "/kafka"})
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = b.Addrs()
	}
	ctx := context.Background()
	e := &env{brokers: brokers, in: fmt.Sprintf("bench-in-%d", time.Now().UnixNano()), records: records, partitions: partitions, par: par, dir: dir}
	if err := kafka.CreateTopic(ctx, brokers, e.in, partitions); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "writing %d records of %d bytes over %d keys into %s...\n", records, valueSize, keys, e.in)
	if err := benchkit.WriteInput(ctx, brokers, e.in, records, keys, valueSize); err != nil {
		return err
	}

	scenarios := []scenario{
		{"raw franz-go consume+produce, at-least-once (flush every 1s)", rawCopy, verifyCopy},
		{"onceflow pass-through, exactly-once", copyJob(kafka.ExactlyOnce), verifyCopy},
		{"onceflow pass-through, at-least-once", copyJob(kafka.AtLeastOnce), verifyCopy},
		{"onceflow keyed count, exactly-once", countJob, verifyCount},
	}
	if only != "" {
		scenarios = slices.DeleteFunc(scenarios, func(s scenario) bool { return s.name != scenarios[0].name && !strings.Contains(s.name, only) })
	}
	samples := make([][]result, len(scenarios))
	// Interleave the scenarios so that drift on a shared machine hits all.
	for r := 0; r < rounds; r++ {
		for i, s := range scenarios {
			outTopic := fmt.Sprintf("bench-out-%d-%d", r, i)
			if err := kafka.CreateTopic(ctx, brokers, outTopic, partitions); err != nil {
				return err
			}
			res, err := measure(ctx, e, s, outTopic)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d: %s: %.0f records/s\n", r+1, s.name, res.RecordsPerSec)
			samples[i] = append(samples[i], res)
			if r == 0 && verify {
				if err := s.verify(ctx, e, outTopic); err != nil {
					return fmt.Errorf("%s: verify: %w", s.name, err)
				}
			}
			// Free the broker's memory and disk between measurements.
			if err := kafka.DeleteTopic(ctx, brokers, outTopic); err != nil {
				return err
			}
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
	where := "an embedded kfake broker in the same process"
	if brokerList != "" {
		where = "brokers " + brokerList
	}
	fmt.Printf("Kafka -> Kafka, %d records of %d bytes over %d keys, %d partitions, on %s; jobs at parallelism %d with checkpoints every 1s; median of %d rounds\n\n",
		records, valueSize, keys, partitions, where, par, rounds)
	fmt.Println("| scenario | records/s | CPU s per M records | ratio to raw | checkpoints |")
	fmt.Println("|---|---:|---:|---:|---:|")
	for _, r := range results {
		fmt.Printf("| %s | %.0f | %.2f | %.3f | %d |\n", r.Scenario, r.RecordsPerSec, r.CPUSecPerMRec, r.Ratio, r.Checkpoints)
	}
	if jsonOut != "" {
		data, _ := json.MarshalIndent(results, "", "  ")
		if err := os.WriteFile(jsonOut, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func measure(ctx context.Context, e *env, s scenario, out string) (result, error) {
	cpu0 := benchkit.CPUSeconds()
	start := time.Now()
	checkpoints, err := s.run(ctx, e, out)
	if err != nil {
		return result{}, err
	}
	elapsed := time.Since(start).Seconds()
	cpu := benchkit.CPUSeconds() - cpu0
	return result{Scenario: s.name, Records: e.records, RecordsPerSec: float64(e.records) / elapsed,
		CPUSecPerMRec: cpu / (float64(e.records) / 1e6), Checkpoints: checkpoints, ElapsedSeconds: elapsed}, nil
}

var errShort = errors.New("output is short")
