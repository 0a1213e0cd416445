package runner

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// A stop with savepoint is durable intent (Job.StopRequestedAt): when the
// runner dies during one, the job process dies with it and the stop would
// be lost, leaving running a job its user stopped. The next runner starts
// the job again from its latest checkpoint and, once it runs, stops it with
// a new savepoint.

// resumeStopTimeout bounds one re-issued stop with savepoint.
const resumeStopTimeout = 10 * time.Minute

// keepStopIntentLocked prepares, at runner start, a job whose stop with
// savepoint was in flight: it starts again, and the stop follows.
func (r *Runner) keepStopIntentLocked(e *entry) {
	j := e.job
	if j.StopRequestedAt == nil { // a table written before the field existed
		now := time.Now().UTC()
		j.StopRequestedAt = &now
	}
	if j.State == StateStopping {
		j.State = StateStarting
	}
	j.Reason = resumeStopReason
	r.log.Warn("a stop with savepoint was in flight when the runner stopped; it is resumed once the job runs", "job", j.ID, "requested_at", j.StopRequestedAt)
	_ = r.saveLocked()
}

const resumeStopReason = "stopping with savepoint: the stop requested before the runner restarted resumes once the job runs"

// resumeStopLocked re-issues the stop with savepoint of a job that runs
// again, in a goroutine: it waits for the savepoint.
func (r *Runner) resumeStopLocked(e *entry) {
	e.resumingStop = true
	e.job.Reason = resumeStopReason
	r.wg.Add(1)
	go r.resumeStop(e)
}

func (r *Runner) resumeStop(e *entry) {
	defer r.wg.Done()
	id := e.job.ID // immutable
	ctx, cancel := context.WithTimeout(r.ctx, resumeStopTimeout)
	defer cancel()
	_, err := r.Trigger(ctx, id, "stop")
	r.mu.Lock()
	defer r.mu.Unlock()
	e.resumingStop = false
	if err == nil || r.ctx.Err() != nil || !Active(e.job.State) {
		return // stopped; or the next runner resumes it; or cancelled meanwhile
	}
	j := e.job
	if errors.Is(err, ErrConflict) {
		// The process was not there to answer (it died, or is starting
		// again): the next one that runs gets the stop.
		now := time.Now().UTC()
		j.StopRequestedAt = &now
		j.Reason = fmt.Sprintf("%s; the last attempt found no running process: %v", resumeStopReason, err)
	} else {
		// The job refused the savepoint or did not finish it in time: it
		// runs on, and says why it did not stop.
		j.Reason = fmt.Sprintf("the stop with savepoint requested before the runner restarted failed, so the job runs on; stop it again: %v", err)
	}
	r.log.Warn("resumed stop with savepoint failed", "job", id, "err", err)
	_ = r.saveLocked()
}
