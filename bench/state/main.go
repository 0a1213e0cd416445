// Command state measures keyed state backends: keyed-count throughput with
// Pebble state against the in-memory backend, Pebble state get/put rates
// against raw Pebble, the synchronous part of snapshots, bytes uploaded per
// checkpoint against state size and change rate (changelog snapshots and
// SST-level snapshots), restore time with and without local recovery, and a
// larger-than-memory run. Each scenario reports ratios measured in the same
// run (absolute numbers drift on shared machines; ratios hold).
//
//	go run ./bench/state -only throughput
//	go run ./bench/state -only getput
//	go run ./bench/state -only snapshot      # sync part p99, 1M keys
//	go run ./bench/state -only upload        # 1M and 5M keys, 0.1/1/10% change, and restore times
//	go run ./bench/state -only ltm -ltm-keys 10000000   # run alone: it reports max RSS
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
)

var (
	only        = flag.String("only", "", "run only the scenarios whose name contains this (throughput, getput, snapshot, upload, ltm)")
	keys        = flag.Int("keys", 1_000_000, "distinct keys of the throughput, getput and snapshot scenarios")
	records     = flag.Uint64("records", 10_000_000, "records of the throughput scenario")
	rounds      = flag.Int("rounds", 3, "measurements per throughput variant (median reported)")
	sizes       = flag.String("sizes", "1000000,5000000", "state sizes (keys) of the upload and restore scenarios")
	ltmKeys     = flag.Int("ltm-keys", 10_000_000, "keys of the larger-than-memory scenario")
	ltmOps      = flag.Int("ltm-updates", 10_000_000, "updates of the larger-than-memory scenario after loading")
	workRoot    = flag.String("dir", "", "scratch directory (default: a temporary one)")
	ltmMemory   = flag.Bool("ltm-memory", false, "ltm scenario: the in-memory backend instead, as the reference")
	restoreOnly = flag.Bool("restore-only", false, "upload scenario: only the runs the restore table needs")
	getputCache = flag.Int64("getput-cache", 0, "only this write cache size in the getput scenario")
	cpuProf     = flag.String("cpuprofile", "", "write a CPU profile of the run to this file")
)

func main() {
	flag.Parse()
	stopProfile, err := benchkit.StartCPUProfile(*cpuProf)
	if err != nil {
		fail(err)
	}
	defer stopProfile()
	scenarios := []struct {
		name string
		run  func(dir string) error
	}{
		{"throughput", throughput},
		{"getput", getPut},
		{"snapshot", snapshotSync},
		{"upload", uploads},
		{"ltm", largerThanMemory},
	}
	for _, s := range scenarios {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		if s.name == "ltm" && *only == "" {
			continue // its RSS is only meaningful in a process of its own
		}
		dir, err := os.MkdirTemp(*workRoot, "onceflow-bench-state-")
		if err != nil {
			fail(err)
		}
		fmt.Printf("## %s\n\n", s.name)
		err = s.run(dir)
		os.RemoveAll(dir)
		if err != nil {
			fail(fmt.Errorf("%s: %w", s.name, err))
		}
		fmt.Println()
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench/state:", err)
	pprof.StopCPUProfile()
	os.Exit(1)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// rssMiB is the current resident set size, from /proc (Linux).
func rssMiB() float64 {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	fmt.Sscan(string(data), &size, &resident)
	return float64(resident*int64(os.Getpagesize())) / (1 << 20)
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }
