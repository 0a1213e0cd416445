package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Delete removes a job that has ended for good (FINISHED, STOPPED, FAILED,
// CANCELLED): its entry in the job table, its checkpoints, its working
// directory and log, and its uploaded binary unless another job runs it.
// A terminal job can still be restored from its checkpoints, so nothing of
// it is removed before this. Its savepoints are never deleted implicitly:
// while it has any, Delete refuses and names them (delete-savepoint them
// first, or keep the job).
func (r *Runner) Delete(ctx context.Context, id string) error {
	j, err := r.job(id)
	if err != nil {
		return err
	}
	if err := r.checkDeletable(id); err != nil {
		return err
	}
	s, err := r.storeFor(ctx, &j)
	if err != nil {
		return err
	}
	pts, err := listPoints(ctx, s, id)
	if err != nil {
		return fmt.Errorf("delete job %s: list its checkpoints: %w", id, err)
	}
	var savepoints []string
	for _, p := range pts {
		if p.Kind == "savepoint" {
			savepoints = append(savepoints, p.Path)
		}
	}
	if len(savepoints) > 0 {
		return fmt.Errorf("%w: job %s has %d savepoints (%s): delete them first with delete-savepoint, or keep the job so that they stay restorable", ErrConflict, id, len(savepoints), strings.Join(savepoints, ", "))
	}
	// The store goes first: if the runner dies midway, the entry is still
	// there and Delete can be repeated; the other way round, the objects
	// would be left with no job to name them.
	names, err := s.List(ctx, "")
	if err != nil {
		return fmt.Errorf("delete job %s: list its store: %w", id, err)
	}
	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil {
			return fmt.Errorf("delete job %s: delete %s: %w", id, n, err)
		}
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.checkDeletableLocked(id); err != nil { // a restore may have come meanwhile
		return err
	}
	for i, x := range r.tbl.Jobs {
		if x.ID == id {
			r.tbl.Jobs = append(r.tbl.Jobs[:i], r.tbl.Jobs[i+1:]...)
			break
		}
	}
	delete(r.jobs, id)
	delete(r.stores, id)
	if err := r.saveLocked(); err != nil {
		return fmt.Errorf("delete job %s: %w", id, err)
	}
	if r.ownsBinary(j.Binary) && !r.binaryUsedLocked(j.Binary) {
		if err := os.Remove(j.Binary); err != nil && !os.IsNotExist(err) {
			r.log.Warn("remove the binary of a deleted job", "job", id, "binary", j.Binary, "err", err)
		}
	}
	if err := os.RemoveAll(r.jobDir(id)); err != nil {
		r.log.Warn("remove the directory of a deleted job", "job", id, "err", err)
	}
	r.log.Info("job deleted", "job", id, "binary", j.Binary)
	return nil
}

func (r *Runner) checkDeletable(id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.checkDeletableLocked(id)
}

func (r *Runner) checkDeletableLocked(id string) error {
	e, ok := r.jobs[id]
	if !ok {
		return fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	if Active(e.job.State) || e.supervised {
		return fmt.Errorf("%w: job %s is %s; cancel or stop it before deleting it", ErrConflict, id, e.job.State)
	}
	return nil
}

// ownsBinary reports whether path is a binary uploaded to this runner (a
// path on the runner's machine given at submit is the user's, never
// removed).
func (r *Runner) ownsBinary(path string) bool {
	return filepath.Dir(path) == filepath.Join(r.cfg.DataDir, "bin")
}

// binaryUsedLocked reports whether a job in the table runs path: uploads
// are named by content, so jobs of the same binary share one file.
func (r *Runner) binaryUsedLocked(path string) bool {
	for _, j := range r.tbl.Jobs {
		if j.Binary == path {
			return true
		}
	}
	return false
}

// unusedUploadAge is how old an uploaded binary that no job runs must be
// before a starting runner removes it: younger ones may belong to a submit
// that is about to come (upload and submit are two requests).
const unusedUploadAge = 24 * time.Hour

// sweepBinariesLocked removes uploaded binaries that no job runs: uploads
// never submitted, and those of a job whose deletion was interrupted.
func (r *Runner) sweepBinariesLocked() {
	dir := filepath.Join(r.cfg.DataDir, "bin")
	ents, err := os.ReadDir(dir)
	if err != nil {
		r.log.Warn("list uploaded binaries", "err", err)
		return
	}
	for _, de := range ents {
		p := filepath.Join(dir, de.Name())
		info, err := de.Info()
		if err != nil || r.binaryUsedLocked(p) || time.Since(info.ModTime()) < unusedUploadAge {
			continue
		}
		if err := os.Remove(p); err != nil {
			r.log.Warn("remove an unused uploaded binary", "binary", p, "err", err)
			continue
		}
		r.log.Info("removed an uploaded binary no job runs", "binary", p)
	}
}
