package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The goka peer (bench/peers/goka) is a module of its own, so that goka,
// Sarama and LevelDB stay out of the engine's go.mod: it is built with go
// build in its directory, not by import path. Its failure (to build, when
// the module proxy refuses goka, or to run) must not cost the suite its
// other rows: it is reported as a failed row and an unmeasured target.

const (
	gokaPeer     = "bench/peers/goka"
	gokaScenario = "goka keyed count, at-least-once, LevelDB (bench/peers/goka)"
	gokaTarget   = "keyed count (Pebble, exactly-once, 1s) >= 3x goka's keyed count (at-least-once, LevelDB), same broker and input"
)

// buildGokaPeer builds the peer into dir and returns the binary's path.
func buildGokaPeer(dir string) (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the repository root (go env GOMOD): %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gomod)))
	if root == "." || root == "/" {
		return "", fmt.Errorf("find the repository root: go env GOMOD says %q; run the suite from the repository", strings.TrimSpace(string(gomod)))
	}
	bin := filepath.Join(dir, "goka-peer")
	fmt.Fprintf(os.Stderr, "suite: go build %s (module of its own)\n", gokaPeer)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = filepath.Join(root, gokaPeer)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build in %s: %w: %s", gokaPeer, err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

// gokaRows adds to results the goka peer's row if it failed in every
// round (a measured row is among the throughput results already, noted if
// a later round failed) and returns the target that compares the keyed
// count with it.
func gokaRows(results []result, failure string, records int) ([]result, target) {
	var goka, count *result
	for i := range results {
		switch {
		case results[i].Scenario == gokaScenario:
			goka = &results[i]
		case strings.HasPrefix(results[i].Scenario, "keyed count, Pebble state, exactly-once, checkpoints every 1s"):
			count = &results[i]
		}
	}
	if goka == nil {
		if failure == "" {
			failure = "no goka row"
		}
		results = append(results, result{Scenario: gokaScenario, Records: records, Note: "failed: " + failure})
		return results, target{gokaTarget, "not measured: " + failure, "not run"}
	}
	if failure != "" {
		goka.Note += "; a later round failed: " + failure
	}
	if count == nil || goka.RecordsPerSec == 0 {
		return results, target{gokaTarget, "not measured: no keyed count row", "not run"}
	}
	x := count.RecordsPerSec / goka.RecordsPerSec
	return results, target{gokaTarget, fmt.Sprintf("%.2fx", x), yesno(x >= 3)}
}
