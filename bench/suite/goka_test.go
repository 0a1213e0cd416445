package main

import (
	"strings"
	"testing"
)

// A goka peer that could not be built or run leaves a failed row and an
// unmeasured target, never a silent gap.
func TestGokaRowsFailure(t *testing.T) {
	results, tgt := gokaRows([]result{{Scenario: "keyed count, Pebble state, exactly-once, checkpoints every 1s", RecordsPerSec: 300}},
		"go build in bench/peers/goka: exit status 1: 403 Forbidden", 600_000)
	if len(results) != 2 || results[1].Scenario != gokaScenario || !strings.HasPrefix(results[1].Note, "failed: go build") {
		t.Fatalf("rows %+v", results)
	}
	if tgt.Met != "not run" || !strings.HasPrefix(tgt.Figure, "not measured: go build") {
		t.Fatalf("target %+v", tgt)
	}
}

func TestGokaRowsRatio(t *testing.T) {
	rows := []result{
		{Scenario: "keyed count, Pebble state, exactly-once, checkpoints every 1s", RecordsPerSec: 300},
		{Scenario: gokaScenario, RecordsPerSec: 100},
	}
	results, tgt := gokaRows(rows, "", 600_000)
	if len(results) != 2 || tgt.Figure != "3.00x" || tgt.Met != "yes" {
		t.Fatalf("rows %+v, target %+v", results, tgt)
	}
	_, tgt = gokaRows(rows[1:], "", 600_000)
	if tgt.Met != "not run" {
		t.Fatalf("without a keyed count row: %+v", tgt)
	}
}
