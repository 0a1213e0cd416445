// Command compare measures what checkpointing costs the keyed count at two
// revisions, side by side:
//
//	go run ./bench/compare -a f2f4910 -b . -rounds 10
//
// It builds bench/suite at each revision ("." is the working tree, with
// its uncommitted changes; anything else is checked out into a temporary
// git worktree), then runs the two builds' throughput worker alternately,
// round after round, and prints the medians of each checkpointing
// scenario's cost against checkpointing off, in throughput and in CPU
// seconds per record.
//
// Single runs are not enough on a shared 2-core machine: the same code
// measured 7.3% and 13.8% for the 1 s checkpoint cost in two full suite
// runs an hour apart (session 5). Alternating the two builds exposes both
// to the same drift, and medians over ten or more rounds settle.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

func main() {
	a := flag.String("a", "HEAD", `first revision ("." = the working tree)`)
	b := flag.String("b", ".", "second revision")
	rounds := flag.Int("rounds", 10, "rounds; each runs both builds once, in alternating order")
	records := flag.Int("records", 4_000_000, "input records of each run")
	only := flag.String("only", "keyed count, Pebble state, exactly-once, checkpoint", "the worker scenarios to run (substring); the one named "+baseName+" is the base")
	flag.Parse()
	if err := run(*a, *b, *rounds, *records, *only, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
}

// baseName names the scenario the others are compared with.
const baseName = "checkpointing off"

func run(revA, revB string, rounds, records int, only string, out io.Writer) error {
	root, err := gitOutput(".", "rev-parse", "--show-toplevel")
	if err != nil {
		return fmt.Errorf("find the repository: %w", err)
	}
	tmp, err := os.MkdirTemp("", "onceflow-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	revs := []string{revA, revB}
	bins := make([]string, 2)
	for i, rev := range revs {
		if bins[i], err = build(root, rev, filepath.Join(tmp, fmt.Sprint(i))); err != nil {
			return fmt.Errorf("build bench/suite at %s: %w", rev, err)
		}
	}
	var runs [2][][]result
	for r := 0; r < rounds; r++ {
		for k := range 2 {
			i := (r + k) % 2 // alternate which build goes first
			res, err := runWorker(bins[i], records, only)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", r+1, revs[i], err)
			}
			runs[i] = append(runs[i], res)
		}
		fmt.Fprintf(os.Stderr, "compare: round %d of %d done\n", r+1, rounds)
	}
	rows, err := summarize(runs[0], runs[1])
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "Checkpoint cost against %q, medians of %d alternating rounds of %d records:\n\n", baseName, rounds, records)
	fmt.Fprintf(out, "| scenario | %s: throughput cost | %s: CPU cost | %s: throughput cost | %s: CPU cost |\n|---|---:|---:|---:|---:|\n", revA, revA, revB, revB)
	for _, r := range rows {
		fmt.Fprintf(out, "| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", r.scenario, r.cost[0], r.cpuCost[0], r.cost[1], r.cpuCost[1])
	}
	names, rateA := rates(runs[0])
	_, rateB := rates(runs[1])
	fmt.Fprintf(out, "\nMedian throughput (records/s); a lower cost is a gain only if the base did not slow down:\n\n")
	fmt.Fprintf(out, "| scenario | %s | %s | %s / %s |\n|---|---:|---:|---:|\n", revA, revB, revB, revA)
	for _, n := range names {
		fmt.Fprintf(out, "| %s | %.0f | %.0f | %.3f |\n", n, rateA[n], rateB[n], rateB[n]/rateA[n])
	}
	return nil
}

// build compiles bench/suite at rev into dir and returns the binary.
func build(root, rev, dir string) (string, error) {
	src := root
	if rev != "." {
		src = filepath.Join(dir, "src")
		if _, err := gitOutput(root, "worktree", "add", "--detach", src, rev); err != nil {
			return "", err
		}
		defer gitOutput(root, "worktree", "remove", "--force", src)
	}
	bin := filepath.Join(dir, "suite")
	cmd := exec.Command("go", "build", "-o", bin, "./bench/suite")
	cmd.Dir, cmd.Stderr = src, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", err
	}
	return bin, nil
}

func gitOutput(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(outb)), nil
}

// result is the part of a worker row compare reads.
type result struct {
	Scenario      string  `json:"scenario"`
	RecordsPerSec float64 `json:"records_per_sec"`
	CPUSecPerMRec float64 `json:"cpu_sec_per_million_records"`
}

func runWorker(bin string, records int, only string) ([]result, error) {
	cmd := exec.Command(bin, "-worker", "throughput", "-records", fmt.Sprint(records), "-verify=false", "-only", only)
	cmd.Dir = os.TempDir()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, lastLines(stderr.String(), 5))
	}
	return parseWorker(outb)
}

// parseWorker reads the JSON line of the worker's output.
func parseWorker(outb []byte) ([]result, error) {
	for _, line := range bytes.Split(outb, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("[")) {
			var rs []result
			if err := json.Unmarshal(line, &rs); err != nil {
				return nil, fmt.Errorf("worker output: %w", err)
			}
			return rs, nil
		}
	}
	return nil, fmt.Errorf("worker output has no JSON line: %q", lastLines(string(outb), 3))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
