package runner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// Jobs returns every job, in submission order.
func (r *Runner) Jobs() []*JobView {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*JobView, 0, len(r.tbl.Jobs))
	for _, j := range r.tbl.Jobs {
		out = append(out, r.viewLocked(r.jobs[j.ID]))
	}
	return out
}

// Get returns job id with its live status.
func (r *Runner) Get(id string) (*JobView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	v := r.viewLocked(e)
	if e.status != nil || !Active(e.job.State) {
		v.OutputTail = lastLines(readTail(r.jobDir(id)+"/output.log", 0, 2048), 10)
	}
	return v, nil
}

func (r *Runner) viewLocked(e *entry) *JobView {
	v := &JobView{Job: *e.job, CheckpointsCompleted: e.metrics.completed}
	v.Checkpoints = []CheckpointView{}
	if st := e.status; st != nil {
		v.Engine = &EngineView{Job: st.Job, State: st.State, Attempt: st.Attempt, Restarts: st.Restarts,
			LastFailure: st.LastFailure, FailedAt: st.FailedAt}
		for _, c := range st.Checkpoints {
			cv := CheckpointView{CheckpointInfo: c}
			if c.Manifest != "" {
				cv.Path = e.job.ID + "/" + c.Manifest
			}
			v.Checkpoints = append(v.Checkpoints, cv)
		}
		v.Operators = st.Operators
		v.InputRecords, v.OutputRecords = ioTotals(st.Operators)
		v.InputRate, v.OutputRate = e.inRate, e.outRate
	}
	return v
}

// Trigger asks the job's process for a checkpoint ("checkpoint"), a
// savepoint ("savepoint") or a stop with savepoint ("stop"), and waits for it.
func (r *Runner) Trigger(ctx context.Context, id, act string) (*SavepointResult, error) {
	r.mu.Lock()
	e, ok := r.jobs[id]
	if !ok {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	ctl, state := e.ctl, e.job.State
	if ctl == nil || state != StateRunning {
		r.mu.Unlock()
		return nil, fmt.Errorf("%w: job %s is %s; a %s needs it RUNNING", ErrConflict, id, state, act)
	}
	if act == "stop" {
		if e.stopping {
			r.mu.Unlock()
			return nil, fmt.Errorf("%w: job %s is already stopping", ErrConflict, id)
		}
		e.stopping, e.stopOK, e.stopDone = true, false, make(chan struct{})
		now := time.Now().UTC()
		e.job.State, e.job.StopRequestedAt = StateStopping, &now
		_ = r.saveLocked()
	}
	r.mu.Unlock()

	r.log.Info("trigger", "job", id, "action", act)
	info, err := ctl.act(ctx, act)
	r.mu.Lock()
	defer r.mu.Unlock()
	if act == "stop" {
		e.stopOK = err == nil
		close(e.stopDone)
		if err != nil {
			e.stopping = false
			if r.ctx.Err() == nil { // closing: the next runner finishes the stop
				e.job.StopRequestedAt = nil
			}
			if e.job.State == StateStopping {
				e.job.State = StateRunning
			}
			_ = r.saveLocked()
		}
	}
	if err != nil {
		var je *jobError
		switch {
		case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &je) && je.status == 504:
			return nil, fmt.Errorf("%w: %s of job %s: %v", ErrTimeout, act, id, err)
		case errors.As(err, &je):
			return nil, fmt.Errorf("%w: %s of job %s: %v", ErrJob, act, id, err)
		}
		return nil, fmt.Errorf("%w: %s of job %s: the process did not answer: %v", ErrConflict, act, id, err)
	}
	res := &SavepointResult{CheckpointInfo: info}
	if info.Manifest != "" {
		res.Path = id + "/" + info.Manifest
	}
	if info.Kind == "savepoint" {
		e.job.LastSavepoint = res.Path
		_ = r.saveLocked()
	}
	r.log.Info("trigger done", "job", id, "action", act, "checkpoint", info.ID, "path", res.Path)
	return res, nil
}

// Cancel stops the job's process (SIGTERM, then SIGKILL) without a
// savepoint; it can be restored later from its checkpoints.
func (r *Runner) Cancel(id string) (*JobView, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: job %q", ErrNotFound, id)
	}
	if !Active(e.job.State) {
		return nil, fmt.Errorf("%w: job %s is already %s", ErrConflict, id, e.job.State)
	}
	if e.supervised {
		e.pending = &command{cancel: true}
		notify(e.wake)
	} else {
		r.endLocked(e, StateCancelled, "cancelled by user")
	}
	return r.viewLocked(e), nil
}

// Restore (re)starts job id from a restore point: "latest", one of its
// manifests, or a path of any job's checkpoint or savepoint (copied into its
// store), optionally at another parallelism. A running process is stopped
// first (without a savepoint).
func (r *Runner) Restore(ctx context.Context, id string, req RestoreRequest) (*JobView, error) {
	j, err := r.job(id)
	if err != nil {
		return nil, err
	}
	if req.Parallelism != nil && (*req.Parallelism < 0 || *req.Parallelism > 4096) {
		return nil, fmt.Errorf("%w: parallelism %d: must be in 0..4096", ErrInvalid, *req.Parallelism)
	}
	cmd := &command{restore: "latest", parallelism: req.Parallelism}
	switch from := req.From; {
	case from == "" || from == "latest":
	default:
		if _, err := parseManifest(from); err == nil {
			from = id + "/" + from // a manifest name of this job's store
		}
		pp, err := r.checkPoint(ctx, from)
		if err != nil {
			return nil, err
		}
		if err := r.copyInto(ctx, &j, pp); err != nil {
			return nil, err
		}
		s, err := r.storeFor(ctx, &j)
		if err != nil {
			return nil, err
		}
		floor, err := highestID(ctx, s, pp.engineJob)
		if err != nil {
			return nil, fmt.Errorf("restore job %s: %w", id, err)
		}
		cmd.restore, cmd.floor = pp.manifest, floor
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.jobs[id]
	if e.stopping {
		return nil, fmt.Errorf("%w: job %s is stopping with a savepoint", ErrConflict, id)
	}
	e.pending = cmd
	if e.supervised {
		notify(e.wake)
	} else {
		r.superviseLocked(e)
	}
	return r.viewLocked(e), nil
}

func notify(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Points lists the completed checkpoints and savepoints in job id's store.
func (r *Runner) Points(ctx context.Context, id string) ([]RestorePoint, error) {
	j, err := r.job(id)
	if err != nil {
		return nil, err
	}
	s, err := r.storeFor(ctx, &j)
	if err != nil {
		return nil, err
	}
	pts, err := listPoints(ctx, s, id)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints of job %s: %w", id, err)
	}
	return pts, nil
}

// Savepoints lists the savepoints of every job.
func (r *Runner) Savepoints(ctx context.Context) ([]RestorePoint, error) {
	r.mu.Lock()
	ids := make([]string, 0, len(r.tbl.Jobs))
	for _, j := range r.tbl.Jobs {
		ids = append(ids, j.ID)
	}
	r.mu.Unlock()
	out := []RestorePoint{}
	for _, id := range ids {
		pts, err := r.Points(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, p := range pts {
			if p.Kind == "savepoint" {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// DeleteSavepoint deletes a savepoint by path. A savepoint that a job still
// needs to restart from (its lineage started there and has no checkpoint
// since) is refused.
func (r *Runner) DeleteSavepoint(ctx context.Context, path string) error {
	pp, err := parsePointPath(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if pp.kind != checkpoint.KindSavepoint {
		return fmt.Errorf("%w: %s is a checkpoint; retention deletes checkpoints, only savepoints are deleted by hand", ErrInvalid, path)
	}
	j, err := r.job(pp.job)
	if err != nil {
		return err
	}
	s, err := r.storeFor(ctx, &j)
	if err != nil {
		return err
	}
	if _, err := checkpoint.ReadManifest(ctx, s, pp.manifest); errors.Is(err, checkpoint.ErrNotFound) {
		return fmt.Errorf("%w: savepoint %s", ErrNotFound, path)
	}
	if Active(j.State) && j.Restore == pp.manifest {
		point, err := r.restartPoint(ctx, &j)
		if err != nil {
			return err
		}
		if point == pp.manifest {
			return fmt.Errorf("%w: job %s would restart from savepoint %s after a crash (no checkpoint since); delete it later", ErrConflict, j.ID, path)
		}
	}
	if err := deleteSavepoint(ctx, s, pp); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.jobs[pp.job]; e != nil && e.job.LastSavepoint == path {
		e.job.LastSavepoint = ""
		_ = r.saveLocked()
	}
	r.log.Info("savepoint deleted", "path", path)
	return nil
}
