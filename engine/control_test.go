package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testjob"
)

// TestStopWithSavepointAndRescale stops a running job with a savepoint,
// checks that everything before the savepoint is committed and nothing
// after it, then resumes from the savepoint at another parallelism: the
// final committed output is exact.
func TestStopWithSavepointAndRescale(t *testing.T) {
	dir := t.TempDir()
	store, err := fsstore.Open(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	const records, keys = 40000, 100
	o := testjob.Options{Name: "sp", Records: records, Keys: keys, Parallelism: 2, OutDir: dir + "/out", Rate: 5000}
	ctl := engine.NewControl()
	cfg := engine.Config{Store: store, CheckpointInterval: 50 * time.Millisecond, Control: ctl}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- engine.Run(ctx, testjob.Build(o), cfg) }()

	// Wait for a checkpoint through the control, then take a savepoint and
	// stop with another.
	if err := ctl.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.Checkpoint(ctx); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	sp, err := ctl.Savepoint(ctx)
	if err != nil || sp.Kind != "savepoint" || sp.Manifest == "" {
		t.Fatalf("savepoint: %+v %v", sp, err)
	}
	stop, err := ctl.StopWithSavepoint(ctx)
	if err != nil || stop.ID <= sp.ID {
		t.Fatalf("stop with savepoint: %+v %v", stop, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run after stop: %v", err)
	}
	st := ctl.Status()
	if st.State != engine.StateFinished || len(st.Checkpoints) < 3 {
		t.Fatalf("status after stop: %+v", st)
	}
	lines, err := file.ReadCommitted(o.OutDir, "out")
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) == 0 || len(lines) >= records {
		t.Fatalf("stopped mid-stream but %d of %d records are committed", len(lines), records)
	}
	t.Logf("stopped at savepoint %d with %d of %d records committed", stop.ID, len(lines), records)
	if _, err := ctl.Savepoint(ctx); err == nil {
		t.Fatal("savepoint of a stopped job succeeded")
	}

	// Resume from the stop savepoint at parallelism 3.
	o.Parallelism, o.Rate = 3, 0
	cfg = engine.Config{Store: store, CheckpointInterval: 50 * time.Millisecond, Restore: stop.Manifest}
	if err := engine.Run(ctx, testjob.Build(o), cfg); err != nil {
		t.Fatalf("resume from %s: %v", stop.Manifest, err)
	}
	lines, err = file.ReadCommitted(o.OutDir, "out")
	if err != nil {
		t.Fatal(err)
	}
	if err := testjob.Verify(lines, records, keys); err != nil {
		t.Fatal(err)
	}
}
