package runner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// TestDeleteJob: only an ended job can be deleted, not while it has
// savepoints; deleting it removes its entry, checkpoints and directory, and
// its uploaded binary once no other job runs it.
func TestDeleteJob(t *testing.T) {
	ctx := context.Background()
	truePath, err := exec.LookPath("true")
	if err != nil {
		t.Skip("no true binary")
	}
	f, err := os.Open(truePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dir := t.TempDir()
	r := openTest(t, dir)
	defer r.Close()
	up, _, err := r.UploadBinary(f)
	if err != nil {
		t.Fatal(err)
	}
	j1 := submit(t, r, SubmitRequest{Binary: up})
	j2 := submit(t, r, SubmitRequest{Binary: up})
	v1 := waitState(t, r, j1, StateFinished)
	waitState(t, r, j2, StateFinished)
	bin := v1.Binary

	running := submit(t, r, SubmitRequest{Path: script(t, "exit 4"), Restart: "fixed:-1:1h"})
	waitState(t, r, running, StateRestarting)
	if err := r.Delete(ctx, running); !errors.Is(err, ErrConflict) {
		t.Errorf("deleting an active job: %v, want a conflict", err)
	}

	// A savepoint keeps the job; its checkpoints do not.
	job, _ := r.job(j1)
	s, err := r.storeFor(ctx, &job)
	if err != nil {
		t.Fatal(err)
	}
	putManifest(t, s, checkpoint.KindCheckpoint, 2)
	sp := putManifest(t, s, checkpoint.KindSavepoint, 3)
	if err := r.Delete(ctx, j1); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), j1+"/"+sp) {
		t.Fatalf("deleting a job with a savepoint: %v, want a conflict naming it", err)
	}
	if err := r.DeleteSavepoint(ctx, j1+"/"+sp); err != nil {
		t.Fatal(err)
	}

	if err := r.Delete(ctx, j1); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Get(j1); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted job: %v, want not found", err)
	}
	if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
		t.Errorf("left in the deleted job's store: %v %v", names, err)
	}
	if _, err := os.Stat(r.jobDir(j1)); !os.IsNotExist(err) {
		t.Errorf("the deleted job's directory: %v", err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the binary job %s still runs was removed: %v", j2, err)
	}

	if err := r.Delete(ctx, j2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("uploaded binary of the last deleted job: %v, want removed", err)
	}
	if err := r.Delete(ctx, j2); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting a deleted job: %v, want not found", err)
	}
	if _, err := r.Submit(ctx, SubmitRequest{Binary: up}); !errors.Is(err, ErrInvalid) {
		t.Errorf("submitting the removed binary: %v, want invalid", err)
	}
	tbl, err := loadTable(filepath.Join(dir, "jobs.json"))
	if err != nil || len(tbl.Jobs) != 1 || tbl.Jobs[0].ID != running {
		t.Fatalf("durable table after the deletions: %+v %v", tbl, err)
	}
}
