package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// stores
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/internal/testjob"
)

// pebbleState is the Pebble backend as the chaos tests configure it: a
// write cache small enough that the record path spills, and a changelog
// bound low enough that materializations happen often.
func pebbleState(t *testing.T) pebblestate.Options {
	return pebblestate.Options{Dir: t.TempDir(), WriteCacheSize: 256 << 10, MaterializeRatio: 0.5, MaxChangelogSegments: 5, BlockCacheSize: 4 << 20, MemTableSize: 1 << 20}
}

// TestInProcessFaultsPebble is TestInProcessFaults with keyed state in
// Pebble: faults at every protocol point, failing state uploads, restarts
// with local recovery, rescaling never (same parallelism), and the output
// checked against the oracle.
func TestInProcessFaultsPebble(t *testing.T) {
	quota := map[string]int{
		"operator":                       4,
		string(engine.FaultSnapshot):     2,
		string(engine.FaultUpload):       2,
		"store-put":                      4,
		string(engine.FaultCommit):       2,
		string(engine.FaultBeforeNotify): 1,
	}
	for _, p := range []int{1, 4} {
		for _, seed := range []uint64{1, 2} {
			t.Run(fmt.Sprintf("p=%d/seed=%d", p, seed), func(t *testing.T) {
				t.Parallel()
				in, restarts := runWithFaults(t, faultRun{name: "chaos-pebble", p: p, seed: seed, quota: quota, keys: 400,
					stateBackend: pebblestate.New(pebbleState(t))})
				// What matters for Pebble state: failed state uploads
				// (declines) and restarts (restores, with local recovery).
				// Which other kinds fire depends on timing.
				if in.fired["store-put"]+in.fired[string(engine.FaultUpload)] == 0 || restarts == 0 {
					t.Fatalf("no failed state upload or no restart (faults fired: %s; restarts: %d)", in, restarts)
				}
			})
		}
	}
}

// stallingStore makes some state uploads stall, then fail, as a put that
// times out does; with hang, the first hang state uploads block until
// their context ends, as a put to an unresponsive server without a
// timeout would.
type stallingStore struct {
	checkpoint.Store
	stall    time.Duration
	every    int64
	n        atomic.Int64
	stalled  atomic.Int64
	always   bool
	hang     int64
	released atomic.Int64 // hung puts that ended by cancellation
}

func (s *stallingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if strings.Contains(name, "/data/") {
		if s.always {
			return errors.New("injected: S3 put refused")
		}
		if s.stalled.Load() < s.hang && s.stalled.Add(1) <= s.hang {
			<-ctx.Done()
			s.released.Add(1)
			return context.Cause(ctx)
		}
		if s.n.Add(1)%s.every == 0 {
			s.stalled.Add(1)
			select {
			case <-time.After(s.stall):
			case <-ctx.Done():
			}
			return errors.New("injected: S3 put timed out")
		}
	}
	return s.Store.Put(ctx, name, r, size)
}

// TestPebbleUploadTimeoutsDecline runs the job on MinIO with state uploads
// that stall and time out now and then: those checkpoints are declined, the
// job goes on, later checkpoints complete, and the output is exact.
func TestPebbleUploadTimeoutsDecline(t *testing.T) {
	s3, err := checkpoint.Open(context.Background(), testenv.S3URL(t, testenv.NewBucket(t), "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	store := &stallingStore{Store: s3, stall: 150 * time.Millisecond, every: 25}
	dir := t.TempDir()
	const records, keys = 20000, 200
	o := testjob.Options{Name: "stall", Records: records, Keys: keys, Parallelism: 2, OutDir: dir + "/out", Rate: 5000}
	aborted := &abortCounter{}
	cfg := engine.Config{
		Store: store, StateBackend: pebblestate.New(pebbleState(t)),
		CheckpointInterval: 50 * time.Millisecond, CheckpointTimeout: 2 * time.Second,
		TolerableFailures: 1000, Restart: engine.NoRestart(), Listener: aborted,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := engine.Run(ctx, testjob.Build(o), cfg); err != nil {
		t.Fatalf("run: %v", err)
	}
	verifyCommitted(t, o.OutDir, records, keys)
	t.Logf("%d uploads stalled; %d checkpoints aborted, %d completed", store.stalled.Load(), aborted.aborted.Load(), aborted.completed.Load())
	if store.stalled.Load() == 0 || aborted.aborted.Load() == 0 || aborted.completed.Load() == 0 {
		t.Fatal("the test must see stalled uploads, aborted and completed checkpoints")
	}
}

// TestPebbleHungUploadCancelledWithItsCheckpoint: a state upload that hangs
// (a store that never answers) is cancelled when its checkpoint times out,
// so the single upload worker is free again: later checkpoints complete,
// the job finishes and its output is exact. Before uploads had their
// checkpoint's context, the worker stayed blocked until the attempt ended,
// and no checkpoint completed again.
func TestPebbleHungUploadCancelledWithItsCheckpoint(t *testing.T) {
	fs, err := fsstore.Open(t.TempDir() + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	store := &stallingStore{Store: fs, every: 1 << 62, hang: 2}
	dir := t.TempDir()
	const records, keys = 10000, 100
	o := testjob.Options{Name: "hang", Records: records, Keys: keys, Parallelism: 2, OutDir: dir + "/out", Rate: 5000}
	counts := &abortCounter{}
	cfg := engine.Config{
		Store: store, StateBackend: pebblestate.New(pebbleState(t)),
		CheckpointInterval: 50 * time.Millisecond, CheckpointTimeout: 300 * time.Millisecond,
		UploadConcurrency: 1, TolerableFailures: 1000, Restart: engine.NoRestart(), Listener: counts,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := engine.Run(ctx, testjob.Build(o), cfg); err != nil {
		t.Fatalf("run: %v (hung uploads released: %d of %d)", err, store.released.Load(), store.stalled.Load())
	}
	verifyCommitted(t, o.OutDir, records, keys)
	t.Logf("%d uploads hung and were released; %d checkpoints aborted, %d completed", store.released.Load(), counts.aborted.Load(), counts.completed.Load())
	if store.released.Load() != store.hang || counts.aborted.Load() == 0 || counts.completed.Load() == 0 {
		t.Fatal("the test must see every hung upload cancelled, aborted and completed checkpoints")
	}
}

// TestPebbleUploadFailuresBeyondTolerance: when every state upload fails,
// the job fails after the tolerated number of declined checkpoints, with
// an error that says so.
func TestPebbleUploadFailuresBeyondTolerance(t *testing.T) {
	dir := t.TempDir()
	fs, err := fsstore.Open(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	o := testjob.Options{Name: "refuse", Records: 1 << 40, Keys: 100, Parallelism: 1, OutDir: dir + "/out", Rate: 2000}
	cfg := engine.Config{
		Store: &stallingStore{Store: fs, always: true}, StateBackend: pebblestate.New(pebbleState(t)),
		CheckpointInterval: 20 * time.Millisecond, TolerableFailures: 3, Restart: engine.NoRestart(),
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = engine.Run(ctx, testjob.Build(o), cfg)
	if err == nil || ctx.Err() != nil {
		t.Fatalf("run: %v, want a failure once the tolerance is exceeded", err)
	}
	if !strings.Contains(err.Error(), "S3 put refused") {
		t.Fatalf("run failed with %q, which does not name the failing upload", err)
	}
	t.Logf("failed as expected: %v", err)
}

type abortCounter struct{ aborted, completed atomic.Int64 }

func (a *abortCounter) CheckpointCompleted(*checkpoint.Manifest, time.Duration) { a.completed.Add(1) }
func (a *abortCounter) CheckpointAborted(uint64, string)                        { a.aborted.Add(1) }
func (a *abortCounter) Restarting(int, error, time.Duration)                    {}
