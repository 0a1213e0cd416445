package checkpoint

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestCoordinator runs the scripts in testdata/coordinator. Commands:
//
//	config [job=j] [maxp=8] [ops=(src:2, sink:1)] [sources=(src)] [interval=0]
//	       [timeout=10] [minpause=0] [tolerable=0] [retained=1] [next=1] [completed=(1, 2)]
//	tick [n]                        n ticks; effects are prefixed with their tick
//	trigger checkpoint|savepoint|kind=<n>
//	ack id=<id> task=<op>/<i> [handle=<name>]
//	ack-all id=<id> [except=(<task>, ...)]   every subtask in config order
//	decline id=<id> task=<op>/<i> [reason=<text>]
//	manifest-written id=<id> [err=exists|<text>]
//	source-finished task=<op>/<i>
//	state                           the accessors
//
// Every command prints its effects one per line, and "ignored" when the
// coordinator counted the message as ignored.
func TestCoordinator(t *testing.T) {
	datadriven.Walk(t, "testdata/coordinator", func(t *testing.T, path string) {
		var c *Coordinator
		var cfg CoordinatorConfig
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			if td.Cmd != "config" && c == nil {
				td.Fatalf(t, "%s before config", td.Cmd)
			}
			step := func(msg any) string {
				before := c.Ignored()
				s := formatEffects(c.Step(msg))
				if c.Ignored() > before {
					s += "ignored\n"
				}
				return s
			}
			switch td.Cmd {
			case "config":
				cfg = parseConfig(t, td)
				var err error
				if c, err = NewCoordinator(cfg); err != nil {
					c = nil
					return "error: " + err.Error() + "\n"
				}
				return "ok\n"
			case "tick":
				n := 1
				if len(td.CmdArgs) > 0 {
					n = atoi(t, td, td.CmdArgs[0].Key)
				}
				var b strings.Builder
				ignored := c.Ignored()
				for range n {
					for _, line := range strings.SplitAfter(formatEffects(c.Step(Tick{})), "\n") {
						if line != "" {
							fmt.Fprintf(&b, "t=%d: %s", c.Ticks(), line)
						}
					}
				}
				if ignored = c.Ignored() - ignored; ignored > 0 {
					fmt.Fprintf(&b, "ignored %d ticks\n", ignored)
				}
				return b.String()
			case "trigger":
				var k Kind
				stop := td.HasArg("stop")
				switch arg := td.CmdArgs[0]; arg.Key {
				case "checkpoint":
					k = KindCheckpoint
				case "savepoint":
					k = KindSavepoint
				case "kind":
					k = Kind(atoi(t, td, arg.SingleVal(t)))
				default:
					td.Fatalf(t, "trigger %s", arg.Key)
				}
				return step(TriggerRequest{Kind: k, Stop: stop})
			case "ack":
				var id uint64
				var task, handle string
				td.ScanArgs(t, "id", &id)
				td.ScanArgs(t, "task", &task)
				td.MaybeScanArgs(t, "handle", &handle)
				var st SubtaskState
				if handle != "" {
					st.Keyed = []Handle{{Name: handle}}
				}
				return step(Ack{ID: id, Task: parseTask(t, td, task), State: st})
			case "ack-all":
				var id uint64
				td.ScanArgs(t, "id", &id)
				var except []string
				if arg, ok := td.Arg("except"); ok {
					except = arg.Vals
				}
				var b strings.Builder
				for _, op := range cfg.Operators {
					for i := range op.Parallelism {
						task := TaskID{op.Name, i}
						if !slices.Contains(except, task.String()) {
							b.WriteString(step(Ack{ID: id, Task: task}))
						}
					}
				}
				return b.String()
			case "decline":
				var id uint64
				var task string
				reason := "snapshot failed"
				td.ScanArgs(t, "id", &id)
				td.ScanArgs(t, "task", &task)
				td.MaybeScanArgs(t, "reason", &reason)
				return step(Decline{ID: id, Task: parseTask(t, td, task), Reason: reason})
			case "manifest-written":
				var id uint64
				var errText string
				td.ScanArgs(t, "id", &id)
				td.MaybeScanArgs(t, "err", &errText)
				var err error
				switch errText {
				case "":
				case "exists":
					err = fmt.Errorf("put manifest-%d: %w", id, ErrExists)
				default:
					err = errors.New(errText)
				}
				return step(ManifestWritten{ID: id, Err: err})
			case "source-finished":
				var task string
				td.ScanArgs(t, "task", &task)
				return step(SourceFinished{Task: parseTask(t, td, task)})
			case "state":
				return formatState(c)
			}
			td.Fatalf(t, "unknown command %s", td.Cmd)
			return ""
		})
	})
}

func parseConfig(t *testing.T, td *datadriven.TestData) CoordinatorConfig {
	cfg := CoordinatorConfig{
		Job:            "job",
		MaxParallelism: 8,
		Operators:      []OperatorInfo{{"src", 1}, {"sink", 1}},
		Sources:        []string{"src"},
		TimeoutTicks:   10,
		Retained:       1,
		NextID:         1,
	}
	for _, arg := range td.CmdArgs {
		switch arg.Key {
		case "job":
			cfg.Job = arg.SingleVal(t)
		case "maxp":
			cfg.MaxParallelism = atoi(t, td, arg.SingleVal(t))
		case "ops":
			cfg.Operators = nil
			for _, v := range arg.Vals {
				if v == "" {
					continue
				}
				name, p, _ := strings.Cut(v, ":")
				cfg.Operators = append(cfg.Operators, OperatorInfo{name, atoi(t, td, p)})
			}
		case "sources":
			cfg.Sources = nil
			for _, v := range arg.Vals {
				if v != "" {
					cfg.Sources = append(cfg.Sources, v)
				}
			}
		case "interval":
			cfg.IntervalTicks = atoi(t, td, arg.SingleVal(t))
		case "timeout":
			cfg.TimeoutTicks = atoi(t, td, arg.SingleVal(t))
		case "minpause":
			cfg.MinPauseTicks = atoi(t, td, arg.SingleVal(t))
		case "tolerable":
			cfg.TolerableFailures = atoi(t, td, arg.SingleVal(t))
		case "retained":
			cfg.Retained = atoi(t, td, arg.SingleVal(t))
		case "next":
			cfg.NextID = uint64(atoi(t, td, arg.SingleVal(t)))
		case "completed":
			for _, v := range arg.Vals {
				cfg.Completed = append(cfg.Completed, uint64(atoi(t, td, v)))
			}
		default:
			td.Fatalf(t, "config: unknown argument %s", arg.Key)
		}
	}
	return cfg
}

func parseTask(t *testing.T, td *datadriven.TestData, s string) TaskID {
	op, i, ok := strings.Cut(s, "/")
	if !ok {
		td.Fatalf(t, "task %q: want op/index", s)
	}
	return TaskID{op, atoi(t, td, i)}
}

func atoi(t *testing.T, td *datadriven.TestData, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		td.Fatalf(t, "%v", err)
	}
	return n
}

func formatBarrier(b Barrier) string {
	s := fmt.Sprintf("id=%d kind=%v", b.ID, b.Kind)
	if b.Final {
		s += " final"
	}
	return s
}

// formatEffects prints coordinator and aligner effects, one per line; a
// manifest is followed by one indented line per subtask.
func formatEffects(effects []Effect) string {
	var b strings.Builder
	for _, e := range effects {
		switch e := e.(type) {
		case InjectBarrier:
			fmt.Fprintf(&b, "inject-barrier %s\n", formatBarrier(e.Barrier))
		case WriteManifest:
			m := e.Manifest
			fmt.Fprintf(&b, "write-manifest job=%s id=%d kind=%v maxp=%d created=%d\n",
				m.Job, m.ID, m.Kind, m.MaxParallelism, m.CreatedUnixMilli)
			for _, op := range m.Operators {
				for _, st := range op.Subtasks {
					fmt.Fprintf(&b, "  %s (parallelism %d) %s/%d", op.Name, op.Parallelism, st.Operator, st.Subtask)
					for _, h := range st.Keyed {
						fmt.Fprintf(&b, " %s", h.Name)
					}
					b.WriteString("\n")
				}
			}
		case NotifyComplete:
			fmt.Fprintf(&b, "notify-complete id=%d", e.ID)
			if e.Final {
				b.WriteString(" final")
			}
			b.WriteString("\n")
		case NotifyAborted:
			fmt.Fprintf(&b, "notify-aborted id=%d: %s\n", e.ID, e.Reason)
		case DeleteCheckpoints:
			fmt.Fprintf(&b, "delete-checkpoints %v\n", e.IDs)
		case FailJob:
			fmt.Fprintf(&b, "fail-job: %v\n", e.Err)
		case JobFinished:
			b.WriteString("job-finished\n")
		case Block:
			fmt.Fprintf(&b, "block %d\n", e.Input)
		case UnblockAll:
			b.WriteString("unblock-all\n")
		case Snapshot:
			fmt.Fprintf(&b, "snapshot %s\n", formatBarrier(e.Barrier))
		case AbortAlignment:
			fmt.Fprintf(&b, "abort-alignment id=%d\n", e.ID)
		case ProtocolError:
			fmt.Fprintf(&b, "protocol-error: %v\n", e.Err)
		default:
			fmt.Fprintf(&b, "unexpected effect %T\n", e)
		}
	}
	return b.String()
}

func formatState(c *Coordinator) string {
	var b strings.Builder
	if p, ok := c.PendingBarrier(); ok {
		fmt.Fprintf(&b, "pending: %s\n", formatBarrier(p))
	} else {
		b.WriteString("pending: none\n")
	}
	fmt.Fprintf(&b, "ticks: %d\n", c.Ticks())
	fmt.Fprintf(&b, "last-completed: %d\n", c.LastCompleted())
	fmt.Fprintf(&b, "retained: %v\n", c.Retained())
	fmt.Fprintf(&b, "consecutive-failures: %d\n", c.ConsecutiveFailures())
	fmt.Fprintf(&b, "ignored: %d\n", c.Ignored())
	fmt.Fprintf(&b, "finished: %t\n", c.Finished())
	if c.Err() != nil {
		fmt.Fprintf(&b, "err: %v\n", c.Err())
	}
	return b.String()
}

// TestCoordinatorErrors checks that the FailJob errors can be told apart
// with errors.Is, which the loop needs to pick a restart strategy.
func TestCoordinatorErrors(t *testing.T) {
	cfg := CoordinatorConfig{Job: "j", MaxParallelism: 1, Operators: []OperatorInfo{{"src", 1}},
		Sources: []string{"src"}, TimeoutTicks: 1, Retained: 1, NextID: 1}
	c, err := NewCoordinator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Step(TriggerRequest{Kind: KindCheckpoint})
	c.Step(Ack{ID: 1, Task: TaskID{"src", 0}})
	c.Step(ManifestWritten{ID: 1, Err: fmt.Errorf("s3: %w", ErrExists)})
	if !errors.Is(c.Err(), ErrExists) || errors.Is(c.Err(), ErrTolerableFailuresExceeded) {
		t.Fatalf("exists: got %v", c.Err())
	}

	c, _ = NewCoordinator(cfg)
	c.Step(TriggerRequest{Kind: KindCheckpoint})
	c.Step(Tick{})
	if !errors.Is(c.Err(), ErrTolerableFailuresExceeded) {
		t.Fatalf("tolerance: got %v", c.Err())
	}

	defer func() {
		if recover() == nil {
			t.Fatal("Step(unknown message) did not panic")
		}
	}()
	c, _ = NewCoordinator(cfg)
	c.Step("not a message")
}

// TestCoordinatorProperties drives coordinators with random interleavings of
// every message, plausible and not, and checks the invariants the rest of
// the system relies on after every step.
func TestCoordinatorProperties(t *testing.T) {
	const runs, steps = 500, 400
	seen := map[string]int{}
	for seed := range uint64(runs) {
		rng := rand.New(rand.NewPCG(seed, 0x5eed))
		cfg := CoordinatorConfig{
			Job:               "j",
			MaxParallelism:    4,
			Operators:         []OperatorInfo{{"src", 1 + rng.IntN(2)}, {"map", 1 + rng.IntN(3)}, {"sink", 1}},
			Sources:           []string{"src"},
			IntervalTicks:     rng.IntN(4),
			TimeoutTicks:      1 + rng.IntN(20),
			MinPauseTicks:     rng.IntN(3),
			TolerableFailures: rng.IntN(4),
			Retained:          1 + rng.IntN(3),
			NextID:            1 + uint64(rng.IntN(5)),
		}
		if err := checkCoordinatorRun(cfg, rng, steps, seen); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
	// The invariants are only worth something if the runs reach the
	// interesting transitions.
	t.Logf("effects over %d runs: %v", runs, seen)
	for _, k := range []string{"checkpoint complete", "savepoint complete", "final complete", "abort",
		"delete", "fail tolerance", "fail exists", "finished"} {
		if seen[k] < 10 {
			t.Errorf("only %d %q in %d runs: the random walk misses it", seen[k], k, runs)
		}
	}
}

func checkCoordinatorRun(cfg CoordinatorConfig, rng *rand.Rand, steps int, seen map[string]int) error {
	c, err := NewCoordinator(cfg)
	if err != nil {
		return err
	}
	var tasks, sources []TaskID
	for _, op := range cfg.Operators {
		for i := range op.Parallelism {
			tasks = append(tasks, TaskID{op.Name, i})
			if op.Name == "src" {
				sources = append(sources, TaskID{op.Name, i})
			}
		}
	}
	var (
		lastInjected uint64   // highest id injected so far
		open         *Barrier // injected, not yet completed or aborted
		acked        = map[TaskID]bool{}
		manifests    = map[uint64]bool{} // WriteManifest emitted
		written      = map[uint64]bool{} // ManifestWritten{nil} sent
		kinds        = map[uint64]Kind{}
		retained     []uint64
		failures     int
		stopped      bool
	)
	for step := range steps {
		var msg any
		// Mostly the latest id, sometimes a stale one or one from the future.
		id := lastInjected
		if rng.IntN(4) == 0 {
			id = lastInjected + uint64(rng.IntN(3)) - 1
		}
		switch r := rng.IntN(100); {
		case r < 35:
			msg = Tick{}
		case r < 70:
			msg = Ack{ID: id, Task: tasks[rng.IntN(len(tasks))]}
		case r < 72:
			msg = Decline{ID: id, Task: tasks[rng.IntN(len(tasks))], Reason: "random"}
		case r < 86:
			var err error
			switch rng.IntN(40) {
			case 0:
				err = fmt.Errorf("x: %w", ErrExists)
			case 1, 2, 3:
				err = errors.New("io")
			}
			msg = ManifestWritten{ID: id, Err: err}
		case r < 95:
			msg = TriggerRequest{Kind: Kind(1 + rng.IntN(2))}
		case r < 97:
			msg = SourceFinished{Task: sources[rng.IntN(len(sources))]}
		default:
			msg = Ack{ID: id, Task: TaskID{"nobody", 0}}
		}
		effects := c.Step(msg)
		if stopped && effects != nil {
			return fmt.Errorf("step %d: effects after the job stopped: %v", step, effects)
		}
		if m, ok := msg.(Ack); ok && open != nil && m.ID == open.ID && slices.Contains(tasks, m.Task) {
			acked[m.Task] = true
		}
		if m, ok := msg.(ManifestWritten); ok && m.Err == nil && manifests[m.ID] {
			written[m.ID] = true
		}
		for _, e := range effects {
			switch e := e.(type) {
			case InjectBarrier:
				if open != nil {
					return fmt.Errorf("step %d: barrier %d injected while %d is pending", step, e.Barrier.ID, open.ID)
				}
				if lastInjected != 0 && e.Barrier.ID != lastInjected+1 || lastInjected == 0 && e.Barrier.ID != cfg.NextID {
					return fmt.Errorf("step %d: barrier %d injected after %d (next id %d)", step, e.Barrier.ID, lastInjected, cfg.NextID)
				}
				b := e.Barrier
				open, lastInjected = &b, b.ID
				kinds[b.ID] = b.Kind
				clear(acked)
			case WriteManifest:
				if open == nil || e.Manifest.ID != open.ID || len(acked) != len(tasks) || manifests[e.Manifest.ID] {
					return fmt.Errorf("step %d: unexpected manifest %d (pending %v, %d/%d acks)", step, e.Manifest.ID, open, len(acked), len(tasks))
				}
				manifests[e.Manifest.ID] = true
			case NotifyComplete:
				if !manifests[e.ID] || !written[e.ID] || open == nil || open.ID != e.ID {
					return fmt.Errorf("step %d: checkpoint %d complete without its manifest written", step, e.ID)
				}
				if open.Kind == KindCheckpoint {
					failures = 0
					retained = append(retained, e.ID)
				}
				switch {
				case e.Final:
					seen["final complete"]++
				default:
					seen[open.Kind.String()+" complete"]++
				}
				open = nil
			case NotifyAborted:
				if open == nil || open.ID != e.ID || manifests[e.ID] && written[e.ID] {
					return fmt.Errorf("step %d: abort of %d, pending %v", step, e.ID, open)
				}
				if open.Kind == KindCheckpoint {
					failures++
				}
				seen["abort"]++
				open = nil
			case DeleteCheckpoints:
				for _, d := range e.IDs {
					if kinds[d] != KindCheckpoint || len(retained) == 0 || retained[0] != d {
						return fmt.Errorf("step %d: deletes %d, retained %v", step, d, retained)
					}
					retained = retained[1:]
				}
				seen["delete"]++
				if len(retained) != cfg.Retained {
					return fmt.Errorf("step %d: retains %v, want %d", step, retained, cfg.Retained)
				}
			case FailJob:
				if errors.Is(e.Err, ErrExists) {
					seen["fail exists"]++
				} else if failures <= cfg.TolerableFailures {
					return fmt.Errorf("step %d: %v after %d failures, tolerable %d", step, e.Err, failures, cfg.TolerableFailures)
				} else {
					seen["fail tolerance"]++
				}
				stopped = true
			case JobFinished:
				seen["finished"]++
				stopped = true
			}
		}
		if !stopped && errors.Is(c.Err(), ErrTolerableFailuresExceeded) != (failures > cfg.TolerableFailures) {
			return fmt.Errorf("step %d: %d failures, tolerable %d, but err %v", step, failures, cfg.TolerableFailures, c.Err())
		}
		if id, ok := c.Pending(); ok != (open != nil && !stopped) || ok && id != open.ID {
			return fmt.Errorf("step %d: Pending() = %d, %t; effects say %v", step, id, ok, open)
		}
	}
	return nil
}
