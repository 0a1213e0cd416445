// Command suite runs Onceflow's benchmark suite in one command, on an
// embedded broker and a local fsstore, and writes a Markdown table
// (results.md) and JSON (results.json) into -out:
//
//	go run ./bench/suite [--quick] [--out DIR]
//
// It builds bench/kafka, bench/state and bench/suite/recoveryjob once into a
// temporary directory, and the goka peer (bench/peers/goka, a module of its
// own), and runs them as subprocesses, reading their JSON (or their
// Markdown rows); what they do not cover (the 100 ms pass-through, the
// keyed count with Pebble state, end-to-end latency) runs in a child process
// of this binary (-worker). Throughput rounds interleave bench/kafka and the
// worker, and ratios are to the raw franz-go loop measured in the same run.
// See bench/README.md.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

// result is one row of the suite's output.
type result struct {
	Scenario        string  `json:"scenario"`
	Records         int     `json:"records"`
	RecordsPerSec   float64 `json:"records_per_sec,omitempty"`
	CPUSecPerMRec   float64 `json:"cpu_sec_per_million_records,omitempty"`
	Ratio           float64 `json:"ratio_to_baseline,omitempty"`
	Checkpoints     int     `json:"checkpoints,omitempty"`
	P50Ms           float64 `json:"latency_p50_ms,omitempty"`
	P99Ms           float64 `json:"latency_p99_ms,omitempty"`
	P999Ms          float64 `json:"latency_p999_ms,omitempty"`
	MaxMs           float64 `json:"latency_max_ms,omitempty"`
	RecoverySeconds float64 `json:"recovery_seconds,omitempty"`
	MaxRSSMiB       float64 `json:"max_rss_mib,omitempty"`
	ElapsedSeconds  float64 `json:"elapsed_seconds,omitempty"`
	// The same from the moment the source had read a quarter of the input
	// (suite worker's throughput scenarios: see markSteady).
	SteadyRecordsPerSec float64 `json:"steady_records_per_sec,omitempty"`
	SteadyCPUSecPerMRec float64 `json:"steady_cpu_sec_per_million_records,omitempty"`
	Note                string  `json:"note,omitempty"`
}

type target struct {
	What   string `json:"target"`
	Figure string `json:"figure"`
	Met    string `json:"met"` // yes, no, or not run
}

type report struct {
	Date     string   `json:"date"`
	Machine  string   `json:"machine"`
	Mode     string   `json:"mode"`
	Seconds  float64  `json:"seconds"`
	Results  []result `json:"results"`
	Targets  []target `json:"targets"`
	Commands []string `json:"commands"`
}

func main() {
	quick := flag.Bool("quick", false, "small inputs, one round, 20k records/s latency only: under two minutes")
	outDir := flag.String("out", "", "directory of results.md and results.json (default: a new temporary directory)")
	worker := flag.String("worker", "", "internal: run a worker mode (throughput | latency) in this process")
	records := flag.Int("records", 0, "input records of the throughput rounds (default 600k quick, 4M full)")
	keys := flag.Int("keys", 1_000_000, "distinct keys of the throughput input (the keyed counts' state size)")
	rounds := flag.Int("rounds", 0, "throughput rounds, interleaved (default 1 quick, 3 full)")
	verify := flag.Bool("verify", true, "worker: verify outputs")
	rate := flag.Int("rate", 20000, "worker latency: records per second")
	interval := flag.Duration("interval", 100*time.Millisecond, "worker latency: checkpoint interval")
	duration := flag.Duration("duration", 10*time.Second, "worker latency: producing time")
	only := flag.String("only", "", "worker throughput: run only the scenarios whose name contains this")
	cpuProfile := flag.String("cpuprofile", "", "worker throughput: write a CPU profile of each scenario's job run (not the input writing) to this file, suffixed .<scenario index>")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var err error
	switch *worker {
	case "":
		err = suite(*quick, *outDir, *records, *keys, *rounds)
	case "throughput":
		err = workerThroughput(*records, *keys, 100, *verify, *only, *cpuProfile)
	case "latency":
		err = workerLatency(*rate, *interval, *duration, min(2*time.Second, *duration/4))
	default:
		err = fmt.Errorf("unknown -worker %q", *worker)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/suite:", err)
		os.Exit(1)
	}
}

type runner struct {
	bins     map[string]string
	commands []string
	lastRSS  float64 // max RSS of the last child, MiB
}

// run runs a built program and returns its stdout.
func (r *runner) run(prog string, args ...string) ([]byte, error) {
	r.commands = append(r.commands, prog+" "+strings.Join(args, " "))
	fmt.Fprintf(os.Stderr, "suite %s: %s %s\n", time.Now().Format("15:04:05"), prog, strings.Join(args, " "))
	cmd := exec.Command(r.bins[prog], args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w", prog, strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.lastRSS = float64(ru.Maxrss) / 1024
	}
	return stdout.Bytes(), nil
}

func (r *runner) runJSON(prog string, args ...string) ([]result, error) {
	out, err := r.run(prog, args...)
	if err != nil {
		return nil, err
	}
	var res []result
	return res, json.Unmarshal(out, &res)
}

func suite(quick bool, outDir string, records, keys, rounds int) error {
	began := time.Now()
	mode := "full"
	if quick {
		mode = "quick"
	}
	if records == 0 {
		records = map[bool]int{true: 600_000, false: 4_000_000}[quick]
	}
	if rounds == 0 {
		rounds = map[bool]int{true: 1, false: 3}[quick]
	}
	if outDir == "" {
		d, err := os.MkdirTemp("", "onceflow-bench-suite-out-")
		if err != nil {
			return err
		}
		outDir = d
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "onceflow-bench-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r := &runner{bins: map[string]string{"suite": self}}
	for _, p := range []string{"bench/kafka", "bench/state", "bench/suite/recoveryjob"} {
		bin := filepath.Join(tmp, filepath.Base(p))
		fmt.Fprintf(os.Stderr, "suite: go build %s\n", p)
		cmd := exec.Command("go", "build", "-o", bin, "github.com/onceflow/onceflow/"+p)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go build %s: %w", p, err)
		}
		r.bins[p] = bin
	}
	// The goka peer may fail to build (its module comes from the module
	// proxy): then its row and target say why, and the rest still runs.
	gokaFailure := ""
	if bin, err := buildGokaPeer(tmp); err != nil {
		gokaFailure = err.Error()
		fmt.Fprintf(os.Stderr, "suite: goka peer not measured: %v\n", err)
	} else {
		r.bins[gokaPeer] = bin
	}

	// Scenarios 1-4: throughput, bench/kafka and the worker interleaved.
	samples := map[string][]result{}
	var order []string
	add := func(rs []result) {
		for _, x := range rs {
			if _, ok := samples[x.Scenario]; !ok {
				order = append(order, x.Scenario)
			}
			samples[x.Scenario] = append(samples[x.Scenario], x)
		}
	}
	n := strconv.Itoa(records)
	k := strconv.Itoa(keys)
	for round := range rounds {
		ver := strconv.FormatBool(round == 0)
		kafkaRun := func() error {
			f := filepath.Join(tmp, "kafka.json")
			if _, err := r.run("bench/kafka", "-records", n, "-keys", k, "-rounds", "1", "-verify="+ver, "-json", f); err != nil {
				return err
			}
			data, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			var rs []result
			if err := json.Unmarshal(data, &rs); err != nil {
				return err
			}
			for i := range rs {
				rs[i].MaxRSSMiB = r.lastRSS // of the whole bench/kafka process
			}
			add(rs)
			return nil
		}
		workerRun := func() error {
			rs, err := r.runJSON("suite", "-worker", "throughput", "-records", n, "-keys", k, "-verify="+ver)
			add(rs)
			return err
		}
		gokaRun := func() error {
			if gokaFailure != "" {
				return nil
			}
			rs, err := r.runJSON(gokaPeer, "-records", n, "-keys", k, "-verify="+ver)
			if err != nil {
				// A peer's failure is reported, not fatal.
				gokaFailure = err.Error()
				fmt.Fprintf(os.Stderr, "suite: goka peer failed: %v\n", err)
				return nil
			}
			add(rs)
			return nil
		}
		steps := []func() error{kafkaRun, workerRun, gokaRun}
		if round%2 == 1 {
			slices.Reverse(steps)
		}
		for _, s := range steps {
			if err := s(); err != nil {
				return err
			}
		}
	}
	var results []result
	var raw float64
	for _, name := range order {
		s := samples[name]
		slices.SortFunc(s, func(a, b result) int { return int(a.RecordsPerSec - b.RecordsPerSec) })
		m := s[len(s)/2]
		if strings.HasPrefix(name, "raw") {
			raw = m.RecordsPerSec
		}
		note := m.Note // the goka peer's says whether it verified, or had to reprocess
		m.Note = fmt.Sprintf("median of %d", len(s))
		if note != "" {
			m.Note += "; " + note
		}
		m.SteadyRecordsPerSec = median(s, func(x result) float64 { return x.SteadyRecordsPerSec })
		m.SteadyCPUSecPerMRec = median(s, func(x result) float64 { return x.SteadyCPUSecPerMRec })
		if m.SteadyRecordsPerSec > 0 {
			m.Note += fmt.Sprintf("; after the first quarter %.0f records/s, %.2f CPU s per M", m.SteadyRecordsPerSec, m.SteadyCPUSecPerMRec)
		}
		results = append(results, m)
	}
	for i := range results {
		results[i].Ratio = results[i].RecordsPerSec / raw
	}
	find := func(prefix string) *result {
		for i := range results {
			if strings.HasPrefix(results[i].Scenario, prefix) {
				return &results[i]
			}
		}
		return &result{}
	}
	eo1s := find("onceflow pass-through, exactly-once").Ratio
	cntOff := find("keyed count, Pebble state, exactly-once, checkpointing off").RecordsPerSec
	cnt1s := find("keyed count, Pebble state, exactly-once, checkpoints every 1s")
	cnt100 := find("keyed count, Pebble state, exactly-once, checkpoints every 100ms")
	cost1s, cost100 := 1-cnt1s.RecordsPerSec/cntOff, 1-cnt100.RecordsPerSec/cntOff
	steadyOff := find("keyed count, Pebble state, exactly-once, checkpointing off").SteadyRecordsPerSec
	steadyCost := func(r *result) string {
		if steadyOff == 0 || r.SteadyRecordsPerSec == 0 {
			return ""
		}
		return fmt.Sprintf(" (after the first quarter of the input: %.1f%%)", 100*(1-r.SteadyRecordsPerSec/steadyOff))
	}
	results, vsGoka := gokaRows(results, gokaFailure, records)
	targets := []target{
		{"exactly-once pass-through, checkpoints every 1s, >= 0.8x raw", fmt.Sprintf("%.2fx", eo1s), yesno(eo1s >= 0.8)},
		{"keyed count over 1M keys (Pebble, exactly-once, 1s) >= 0.5x raw", fmt.Sprintf("%.2fx", cnt1s.Ratio), yesno(cnt1s.Ratio >= 0.5)},
		vsGoka,
		{"checkpointing every 1s costs <= 5% throughput (keyed count, Pebble)", fmt.Sprintf("%.1f%%", 100*cost1s) + steadyCost(cnt1s), yesno(cost1s <= 0.05)},
		{"checkpointing every 100ms costs <= 25% throughput (keyed count, Pebble)", fmt.Sprintf("%.1f%%", 100*cost100) + steadyCost(cnt100), yesno(cost100 <= 0.25)},
	}

	// Partial results first, in case a later scenario fails or is stopped.
	if _, err := save(outDir, mode, began, r, results, targets); err != nil {
		return err
	}

	// Sync part of a snapshot with 1M keys (bench/state; about 30 s, so
	// not in quick mode).
	if quick {
		targets = append(targets, target{"sync part of a snapshot < 20 ms p99 with 1M keys", "not run in quick mode", "not run"})
	} else if out, err := r.run("bench/state", "-only", "snapshot", "-keys", "1000000"); err != nil {
		return err
	} else if cells := mdRow(out, "sync part p50"); len(cells) >= 4 {
		p99, _ := time.ParseDuration(cells[2])
		results = append(results, result{Scenario: "sync part of a snapshot, 1M keys, Pebble (bench/state)", Records: 1_000_000,
			P50Ms: ms(cells[1]), P99Ms: ms(cells[2]), MaxMs: ms(cells[3]), Note: cells[0] + " snapshots"})
		targets = append(targets, target{"sync part of a snapshot < 20 ms p99 with 1M keys", cells[2], yesno(p99 < 20*time.Millisecond)})
	} else {
		return fmt.Errorf("bench/state snapshot: no table in %q", out)
	}

	// Partial results first, in case a later scenario fails or is stopped.
	if _, err := save(outDir, mode, began, r, results, targets); err != nil {
		return err
	}

	// Scenario 5: end-to-end latency.
	rates := []int{10000, 20000, 50000}
	dur := "20s"
	if quick {
		rates, dur = []int{20000}, "6s"
	}
	for _, rate := range rates {
		for _, iv := range []string{"100ms", "1s"} {
			rs, err := r.runJSON("suite", "-worker", "latency", "-rate", strconv.Itoa(rate), "-interval", iv, "-duration", dur)
			if err != nil {
				return err
			}
			results = append(results, rs...)
			if rate == 20000 && iv == "100ms" && len(rs) == 1 {
				targets = append(targets, target{"e2e p99 <= 150 ms at 20k records/s, checkpoints every 100ms",
					fmt.Sprintf("%.0f ms", rs[0].P99Ms), yesno(rs[0].P99Ms <= 150)})
			}
		}
	}

	// Partial results first, in case a later scenario fails or is stopped.
	if _, err := save(outDir, mode, began, r, results, targets); err != nil {
		return err
	}

	// Scenario 6: recovery, against a broker in this process that outlives the job.
	b, err := devbroker.Start(devbroker.Config{DataDir: filepath.Join(tmp, "broker")})
	if err != nil {
		return err
	}
	sizes := []int{10_000, 1_000_000}
	if !quick {
		sizes = append(sizes, 10_000_000)
	}
	for _, size := range sizes {
		for _, local := range []bool{true, false} {
			r.commands = append(r.commands, fmt.Sprintf("recoveryjob, %d keys, local=%v", size, local))
			fmt.Fprintf(os.Stderr, "suite: recovery, %d keys, local recovery %v\n", size, local)
			res, err := recovery(r.bins["bench/suite/recoveryjob"], b.Addrs(), tmp, size, local)
			if err != nil {
				b.Close()
				return fmt.Errorf("recovery %d keys: %w", size, err)
			}
			results = append(results, res)
			if size == 1_000_000 {
				limit := map[bool]float64{true: 3, false: 6}[local]
				targets = append(targets, target{fmt.Sprintf("recovery with 1M keys <= %.0f s, %s", limit, map[bool]string{true: "local recovery", false: "without local recovery"}[local]),
					fmt.Sprintf("%.2f s", res.RecoverySeconds), yesno(res.RecoverySeconds <= limit)})
			}
		}
	}
	b.Close()

	// Partial results first, in case a later scenario fails or is stopped.
	if _, err := save(outDir, mode, began, r, results, targets); err != nil {
		return err
	}

	// Scenario 7: resident memory with a large state (bench/state ltm, alone in its process).
	ltm, updates := "10000000", "10000000"
	if quick {
		ltm, updates = "1000000", "500000"
	}
	if out, err := r.run("bench/state", "-only", "ltm", "-ltm-keys", ltm, "-ltm-updates", updates); err != nil {
		return err
	} else if cells := mdRow(out, "peak RSS"); len(cells) >= 7 {
		rss, _ := strconv.ParseFloat(cells[3], 64)
		rate, _ := strconv.ParseFloat(cells[1], 64)
		nk, _ := strconv.Atoi(cells[0])
		results = append(results, result{Scenario: "resident memory, keyed counter over " + cells[0] + " keys in Pebble state (bench/state ltm)",
			Records: nk, RecordsPerSec: rate, MaxRSSMiB: rss, Note: "local state dir " + cells[5] + " MiB"})
	} else {
		return fmt.Errorf("bench/state ltm: no table in %q", out)
	}

	md, err := save(outDir, mode, began, r, results, targets)
	if err != nil {
		return err
	}
	fmt.Print(md)
	fmt.Fprintf(os.Stderr, "suite: wrote %s and %s in %v\n", filepath.Join(outDir, "results.md"), filepath.Join(outDir, "results.json"), time.Since(began).Round(time.Second))
	return nil
}

// save writes results.md and results.json and returns the Markdown.
func save(outDir, mode string, began time.Time, r *runner, results []result, targets []target) (string, error) {
	rep := report{Date: began.UTC().Format(time.RFC3339), Machine: machine(), Mode: mode, Seconds: time.Since(began).Seconds(),
		Results: results, Targets: targets, Commands: r.commands}
	md := markdown(rep)
	data, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(outDir, "results.json"), data, 0o644); err != nil {
		return "", err
	}
	return md, os.WriteFile(filepath.Join(outDir, "results.md"), []byte(md), 0o644)
}

func markdown(rep report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Onceflow benchmark suite, %s mode, %s, %s, %.0f s\n\n", rep.Mode, rep.Date, rep.Machine, rep.Seconds)
	b.WriteString("| scenario | records | records/s | CPU s per M records | ratio to raw | checkpoints | p50 ms | p99 ms | p99.9 ms | max ms | recovery s | max RSS MiB | note |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	f := func(v float64, prec int) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatFloat(v, 'f', prec, 64)
	}
	for _, r := range rep.Results {
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Records,
			f(r.RecordsPerSec, 0), f(r.CPUSecPerMRec, 2), f(r.Ratio, 3), f(float64(r.Checkpoints), 0), f(r.P50Ms, 1), f(r.P99Ms, 1),
			f(r.P999Ms, 1), f(r.MaxMs, 1), f(r.RecoverySeconds, 2), f(r.MaxRSSMiB, 0), r.Note)
	}
	b.WriteString("\n| target | measured | met |\n|---|---:|---|\n")
	for _, t := range rep.Targets {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", t.What, t.Figure, map[string]string{"yes": "yes", "no": "**no**"}[t.Met]+map[bool]string{true: "", false: t.Met}[t.Met == "yes" || t.Met == "no"])
	}
	return b.String()
}

// mdRow returns the cells of the first data row of the Markdown table
// whose header line contains header.
func mdRow(out []byte, header string) []string {
	lines := strings.Split(string(out), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "|") && strings.Contains(l, header) && i+2 < len(lines) {
			row := strings.Trim(strings.TrimSpace(lines[i+2]), "|")
			cells := strings.Split(row, "|")
			for j := range cells {
				cells[j] = strings.TrimSpace(cells[j])
			}
			return cells
		}
	}
	return nil
}

func ms(d string) float64 {
	v, _ := time.ParseDuration(d)
	return v.Seconds() * 1000
}

func machine() string {
	model := ""
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(data), "\n") {
			if name, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// median is the median of f over rs, ignoring zeros (not measured).
func median(rs []result, f func(result) float64) float64 {
	var xs []float64
	for _, r := range rs {
		if v := f(r); v > 0 {
			xs = append(xs, v)
		}
	}
	if len(xs) == 0 {
		return 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2]
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
