package checkpoint

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestAligner runs the scripts in testdata/aligner. Commands:
//
//	init inputs=<n>
//	barrier input=<i> id=<id> [savepoint] [final]
//	end input=<i>
//	state                    aligning barrier, blocked and ended inputs
//
// Every command but state prints the effects, one per line.
func TestAligner(t *testing.T) {
	datadriven.Walk(t, "testdata/aligner", func(t *testing.T, path string) {
		var a *Aligner
		var inputs int
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd != "init" && a == nil {
				td.Fatalf(t, "%s before init", td.Cmd)
			}
			switch td.Cmd {
			case "init":
				td.ScanArgs(t, "inputs", &inputs)
				a = NewAligner(inputs)
				return "ok\n"
			case "barrier":
				var in int
				b := Barrier{Kind: KindCheckpoint}
				td.ScanArgs(t, "input", &in)
				td.ScanArgs(t, "id", &b.ID)
				if td.HasArg("savepoint") {
					b.Kind = KindSavepoint
				}
				b.Final = td.HasArg("final")
				return formatEffects(a.Step(BarrierIn{Input: in, Barrier: b}))
			case "end":
				var in int
				td.ScanArgs(t, "input", &in)
				return formatEffects(a.Step(InputEnded{Input: in}))
			case "state":
				var s strings.Builder
				if b, ok := a.Aligning(); ok {
					fmt.Fprintf(&s, "aligning: %s\n", formatBarrier(b))
				} else {
					s.WriteString("aligning: none\n")
				}
				var blocked, ended []int
				for i := range inputs {
					if a.Blocked(i) {
						blocked = append(blocked, i)
					}
					if !a.Live(i) {
						ended = append(ended, i)
					}
				}
				fmt.Fprintf(&s, "blocked: %v\nended: %v\n", blocked, ended)
				return s.String()
			}
			td.Fatalf(t, "unknown command %s", td.Cmd)
			return ""
		})
	})
}

func TestAlignerProtocolError(t *testing.T) {
	a := NewAligner(2)
	a.Step(BarrierIn{Input: 0, Barrier: Barrier{ID: 1, Kind: KindCheckpoint}})
	effects := a.Step(BarrierIn{Input: 0, Barrier: Barrier{ID: 2, Kind: KindCheckpoint}})
	if len(effects) != 1 {
		t.Fatalf("got %v", effects)
	}
	var err error = effects[0].(ProtocolError)
	if !errors.Is(err, ErrProtocolViolation) {
		t.Fatalf("%v does not wrap ErrProtocolViolation", err)
	}
	// The offending message changed nothing.
	if b, ok := a.Aligning(); !ok || b.ID != 1 || !a.Blocked(0) || a.Blocked(1) {
		t.Fatalf("state changed: aligning %v %t", b, ok)
	}
	for _, f := range []func(){func() { NewAligner(0) }, func() { a.Step(Tick{}) }} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		}()
	}
}

// TestAlignerProperties simulates a subtask whose inputs each carry an
// increasing sequence of barriers, with gaps where upstream abandoned a
// checkpoint, all ending with the same last barrier (say the final one). A
// caller that honours Block and UnblockAll must never see a protocol error;
// snapshots strictly increase; a barrier is snapshotted only once every live
// input delivered it; and the last barrier is always snapshotted with nothing
// left blocked (no deadlock).
func TestAlignerProperties(t *testing.T) {
	for seed := range uint64(2000) {
		rng := rand.New(rand.NewPCG(seed, 0xa119))
		if err := checkAlignerRun(rng); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

func checkAlignerRun(rng *rand.Rand) error {
	n := 1 + rng.IntN(4)
	last := uint64(2 + rng.IntN(8))
	queues := make([][]uint64, n)
	for i := range queues {
		for id := uint64(1); id < last; id++ {
			if rng.IntN(4) > 0 {
				queues[i] = append(queues[i], id)
			}
		}
		queues[i] = append(queues[i], last)
	}
	endAfterLast := make([]bool, n) // some inputs end once drained
	for i := range endAfterLast {
		endAfterLast[i] = rng.IntN(2) == 0
	}
	a := NewAligner(n)
	blocked := make([]bool, n)
	ended := make([]bool, n)
	delivered := make([]map[uint64]bool, n)
	for i := range delivered {
		delivered[i] = map[uint64]bool{}
	}
	var lastSnap uint64
	for {
		// Inputs the caller may read: live, not blocked, with something
		// left (a barrier, or the end of stream).
		var readable []int
		for i := range n {
			if !ended[i] && !blocked[i] && (len(queues[i]) > 0 || endAfterLast[i]) {
				readable = append(readable, i)
			}
		}
		if len(readable) == 0 {
			break
		}
		in := readable[rng.IntN(len(readable))]
		var effects []Effect
		if len(queues[in]) > 0 {
			id := queues[in][0]
			queues[in] = queues[in][1:]
			delivered[in][id] = true
			effects = a.Step(BarrierIn{Input: in, Barrier: Barrier{ID: id, Kind: KindCheckpoint}})
		} else {
			ended[in] = true
			effects = a.Step(InputEnded{Input: in})
		}
		for _, e := range effects {
			switch e := e.(type) {
			case Block:
				blocked[e.Input] = true
			case UnblockAll:
				clear(blocked)
			case Snapshot:
				if e.Barrier.ID <= lastSnap {
					return fmt.Errorf("snapshot %d after %d", e.Barrier.ID, lastSnap)
				}
				for i := range n {
					if !ended[i] && !delivered[i][e.Barrier.ID] {
						return fmt.Errorf("snapshot %d before input %d delivered it", e.Barrier.ID, i)
					}
				}
				lastSnap = e.Barrier.ID
			case AbortAlignment:
			case ProtocolError:
				return e
			}
		}
		for i := range n {
			if blocked[i] != a.Blocked(i) {
				return fmt.Errorf("input %d: Blocked() = %t, effects say %t", i, a.Blocked(i), blocked[i])
			}
		}
	}
	if lastSnap != last {
		return fmt.Errorf("last snapshot %d, want %d", lastSnap, last)
	}
	for i := range n {
		if blocked[i] {
			return fmt.Errorf("input %d still blocked at the end", i)
		}
	}
	return nil
}
