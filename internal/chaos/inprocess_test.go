package chaos

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/internal/testjob"
)

// faultRun describes one run of the keyed count under injected faults.
type faultRun struct {
	name         string
	p            int
	seed         uint64
	quota        map[string]int
	keys         int
	stateBackend state.Factory // nil: in-memory
	syncSink     bool          // the sink pre-commits on the record path
}

// runWithFaults runs the keyed count with faults injected at random points
// (operator errors and panics, snapshot, upload, store writes, sink commit,
// between checkpoint completion and notification), checks the committed
// output against the oracle and the store's cleanliness, and returns what
// fired.
func runWithFaults(t *testing.T, r faultRun) (*injector, int64) {
	in := newInjector(r.seed, r.quota)
	var holdStart atomic.Int64
	dir := t.TempDir()
	fs, err := fsstore.Open(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	const records = 60000
	o := testjob.Options{
		Name: r.name, Records: records, Keys: r.keys, Parallelism: r.p, OutDir: dir + "/out", SyncPreCommit: r.syncSink,
		// Spread the input over ~2 s whatever the parallelism.
		Rate:  float64(records) / 2 / float64(min(r.p, testjob.Splits)),
		Fault: func(uint64) error { return in.fault("operator", 1.0/2000, true) },
		// Hold the last quarter of the input until every kind of fault has
		// fired, so that a fast run cannot end early; a trickle of 200
		// records/s still flows so that sinks keep committing (and so the
		// commit faults can fire).
		Pause: func(seq uint64) bool {
			if len(in.missing()) == 0 {
				return false
			}
			holdStart.CompareAndSwap(0, time.Now().UnixNano())
			released := uint64(time.Since(time.Unix(0, holdStart.Load())) / (5 * time.Millisecond))
			return seq >= records*3/4+released
		},
	}
	restarts := &restartCounter{}
	cfg := engine.Config{
		Store:              &flakyStore{Store: fs, in: in, p: 0.05},
		StateBackend:       r.stateBackend,
		CheckpointInterval: 20 * time.Millisecond,
		TolerableFailures:  2,
		Restart:            engine.FixedDelayRestart(-1, time.Millisecond),
		Faults:             in.hook(0.05),
		Tick:               2 * time.Millisecond,
		Listener:           restarts,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := engine.Run(ctx, testjob.Build(o), cfg); err != nil {
		t.Fatalf("run: %v (faults fired: %s)", err, in)
	}
	t.Logf("faults fired: %d (%s); restarts: %d", in.total(), in, restarts.n.Load())
	verifyCommitted(t, o.OutDir, records, r.keys)
	checkStoreIsClean(t, fs, r.name, 2)
	return in, restarts.n.Load()
}

// TestInProcessFaults: at least 20 faults of every kind per run, at
// parallelism 1 and 4 over several seeds; nothing lost, nothing duplicated.
// Seed 2 has the sink pre-commit on the record path, the others off it
// (engine.AsyncPreCommitter).
func TestInProcessFaults(t *testing.T) {
	quota := map[string]int{
		"operator":                       5,
		string(engine.FaultSnapshot):     3,
		string(engine.FaultUpload):       3,
		"store-put":                      3,
		string(engine.FaultCommit):       3,
		string(engine.FaultBeforeNotify): 3,
		string(engine.FaultPreCommit):    3,
	}
	const minFaults = 20
	for _, p := range []int{1, 4} {
		for _, seed := range []uint64{1, 2, 3} {
			t.Run(fmt.Sprintf("p=%d/seed=%d", p, seed), func(t *testing.T) {
				t.Parallel()
				in, _ := runWithFaults(t, faultRun{name: "chaos", p: p, seed: seed, quota: quota, keys: 200, syncSink: seed == 2})
				if in.total() < minFaults {
					t.Fatalf("only %d faults fired, want at least %d (missing: %v)", in.total(), minFaults, in.missing())
				}
				if m := in.missing(); len(m) > 0 {
					t.Fatalf("not every kind of fault fired: %v", m)
				}
			})
		}
	}
}

// TestParallelismDoesNotChangeOutput is the metamorphic check: the same input
// at parallelism 1, 2 and 4 commits identical output.
func TestParallelismDoesNotChangeOutput(t *testing.T) {
	const records, keys = 30000, 120
	var first []string
	for _, p := range []int{1, 2, 4} {
		dir := t.TempDir()
		fs, err := fsstore.Open(dir + "/ckpt")
		if err != nil {
			t.Fatal(err)
		}
		o := testjob.Options{Name: "meta", Records: records, Keys: keys, Parallelism: p, OutDir: dir + "/out"}
		if err := engine.Run(context.Background(), testjob.Build(o), engine.Config{Store: fs, CheckpointInterval: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		lines, err := file.ReadCommitted(o.OutDir, "out")
		if err != nil {
			t.Fatal(err)
		}
		sortStrings(lines)
		if first == nil {
			first = lines
			continue
		}
		if fmt.Sprint(lines) != fmt.Sprint(first) {
			t.Fatalf("parallelism %d committed different output than parallelism 1 (%d vs %d lines)", p, len(lines), len(first))
		}
	}
	if err := testjob.Verify(first, records, keys); err != nil {
		t.Fatal(err)
	}
}

// verifyCommitted checks the committed output of a testjob in outDir
// against its oracle.
func verifyCommitted(t *testing.T, outDir string, records uint64, keys int) {
	t.Helper()
	lines, err := file.ReadCommitted(outDir, "out")
	if err != nil {
		t.Fatal(err)
	}
	if err := testjob.Verify(lines, records, keys); err != nil {
		t.Fatal(err)
	}
}
