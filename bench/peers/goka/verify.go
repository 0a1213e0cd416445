package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

// verifyOutput checks the output against the oracle the suite uses for the
// engine's keyed count (kafkajob.Oracle: each input echoed with its key's
// exact count, computed from the input alone). Goka is at-least-once: after
// a rebalance it reprocesses inputs from its last committed offsets, so the
// check is that every oracle line is in the output (every input echoed,
// with its exact count, by its first processing) and that every other line
// echoes an input (a reprocessing, whose count then runs ahead). Without a
// rebalance the output must equal the oracle. It returns the number of
// reprocessed (extra) outputs.
func verifyOutput(ctx context.Context, brokers []string, in, out string, records int) (reprocessed int, err error) {
	want, rep, err := kafkajob.Oracle(ctx, brokers, in, false)
	if err != nil {
		return 0, err
	}
	if rep.Inputs != records {
		return 0, fmt.Errorf("input %s holds %d records, want %d", in, rep.Inputs, records)
	}
	got, err := kafkajob.Committed(ctx, brokers, out)
	if err != nil {
		return 0, err
	}
	// Both sorted: walk them together.
	var missing, strange []string
	i := 0
	for _, g := range got {
		for i < len(want) && want[i] < g {
			missing = append(missing, want[i])
			i++
		}
		if i < len(want) && want[i] == g {
			i++
			continue
		}
		reprocessed++
		if _, err := kafkajob.Decode(g); err != nil {
			strange = append(strange, g)
		}
	}
	missing = append(missing, want[i:]...)
	if len(missing) > 0 || len(strange) > 0 {
		return reprocessed, fmt.Errorf("output %s: %d lines for %d inputs; %d inputs without their exact echo, e.g. %s; %d malformed lines, e.g. %s",
			out, len(got), len(want), len(missing), head(missing), len(strange), head(strange))
	}
	return reprocessed, nil
}

func head(s []string) string { return strings.Join(s[:min(len(s), 3)], " | ") }
