package main

import (
	"fmt"
	"slices"
	"strings"
)

// row is one checkpointing scenario's median costs, in percent, for the
// two builds.
type row struct {
	scenario      string
	cost, cpuCost [2]float64
}

// summarize turns each build's runs (one []result per round) into the
// median cost of every scenario against the base scenario of the same run:
// throughput lost (1 - rate/base rate) and CPU added per record.
func summarize(a, b [][]result) ([]row, error) {
	var rows []row
	byName := map[string]int{}
	for i, runs := range [2][][]result{a, b} {
		costs := map[string][2][]float64{}
		var order []string
		for n, run := range runs {
			base := -1
			for j, r := range run {
				if strings.Contains(r.Scenario, baseName) {
					base = j
				}
			}
			if base < 0 || run[base].RecordsPerSec <= 0 || run[base].CPUSecPerMRec <= 0 {
				return nil, fmt.Errorf("build %d, run %d: no %q scenario with figures to compare with", i+1, n+1, baseName)
			}
			for j, r := range run {
				if j == base {
					continue
				}
				c, ok := costs[r.Scenario]
				if !ok {
					order = append(order, r.Scenario)
				}
				c[0] = append(c[0], 100*(1-r.RecordsPerSec/run[base].RecordsPerSec))
				c[1] = append(c[1], 100*(r.CPUSecPerMRec/run[base].CPUSecPerMRec-1))
				costs[r.Scenario] = c
			}
		}
		for _, name := range order {
			k, ok := byName[name]
			if !ok {
				k = len(rows)
				byName[name] = k
				rows = append(rows, row{scenario: name})
			}
			rows[k].cost[i] = median(costs[name][0])
			rows[k].cpuCost[i] = median(costs[name][1])
		}
	}
	return rows, nil
}

// rates returns the median throughput of every scenario of a build's runs,
// the base one included, in the order of the first run. A cost that fell
// because the base got slower is no gain: read both tables.
func rates(runs [][]result) (names []string, med map[string]float64) {
	all := map[string][]float64{}
	for _, run := range runs {
		for _, r := range run {
			if _, ok := all[r.Scenario]; !ok {
				names = append(names, r.Scenario)
			}
			all[r.Scenario] = append(all[r.Scenario], r.RecordsPerSec)
		}
	}
	med = map[string]float64{}
	for name, xs := range all {
		med[name] = median(xs)
	}
	return names, med
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
