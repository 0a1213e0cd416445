package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseAndSummarize(t *testing.T) {
	out := []byte("some log line\n" +
		`[{"scenario":"keyed count, checkpointing off","records_per_sec":1000,"cpu_sec_per_million_records":2},` +
		`{"scenario":"keyed count, checkpoints every 1s","records_per_sec":900,"cpu_sec_per_million_records":2.2}]` + "\n")
	run, err := parseWorker(out)
	if err != nil || len(run) != 2 {
		t.Fatalf("parse: %v %v", run, err)
	}
	slower := []result{run[0], {Scenario: run[1].Scenario, RecordsPerSec: 800, CPUSecPerMRec: 2.5}}
	faster := []result{run[0], {Scenario: run[1].Scenario, RecordsPerSec: 990, CPUSecPerMRec: 2.02}}
	// Build a: costs 10%, 20%, 1% -> median 10%; build b: 1% three times.
	rows, err := summarize([][]result{run, slower, faster}, [][]result{faster, faster, faster})
	if err != nil || len(rows) != 1 {
		t.Fatalf("summarize: %v %v", rows, err)
	}
	r := rows[0]
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-9 }
	if r.scenario != "keyed count, checkpoints every 1s" || !near(r.cost[0], 10) || !near(r.cpuCost[0], 10) || !near(r.cost[1], 1) || !near(r.cpuCost[1], 1) {
		t.Fatalf("got %+v, want 10%% / 10%% for a and 1%% / 1%% for b", r)
	}

	names, med := rates([][]result{run, slower, faster})
	if len(names) != 2 || names[0] != run[0].Scenario || med[run[0].Scenario] != 1000 || med[run[1].Scenario] != 900 {
		t.Fatalf("rates: %v %v, want the base at 1000 and the 1 s scenario at 900 records/s", names, med)
	}

	if _, err := summarize([][]result{{run[1]}}, nil); err == nil || !strings.Contains(err.Error(), "checkpointing off") {
		t.Fatalf("a run without the base scenario: %v", err)
	}
	if _, err := parseWorker([]byte("no json here\n")); err == nil {
		t.Fatal("output without a JSON line parsed")
	}
}
