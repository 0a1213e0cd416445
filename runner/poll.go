package runner

import (
	"context"
	"time"

	"github.com/onceflow/onceflow/engine"
)

// poll reads the job's status until ctx is done: every 100ms until the
// process first answers (so that STARTING turns RUNNING quickly), then every
// PollInterval. The process may not answer yet (it is starting) or any more
// (it is exiting): the supervisor learns about exits from wait, not here.
func (r *Runner) poll(ctx context.Context, e *entry, ctl *controlClient) {
	interval := 100 * time.Millisecond
	t := time.NewTimer(0)
	defer t.Stop()
	started, answered := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := ctl.status(sctx)
		cancel()
		if err == nil {
			r.observe(e, st)
			interval, answered = r.cfg.PollInterval, true
		} else if !answered && time.Since(started) > 15*time.Second {
			r.silent(e, err)
		}
		t.Reset(interval)
	}
}

// observe folds a status into the job: its state, its engine name, rates,
// and checkpoint counters.
func (r *Runner) observe(e *entry, st engine.Status) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	j := e.job
	save := false
	if j.State == StateStarting {
		j.State, j.Reason = StateRunning, ""
		save = true
	}
	if j.State == StateRunning && j.StopRequestedAt != nil && !e.stopping && !e.resumingStop {
		r.resumeStopLocked(e)
	}
	if j.EngineJob == "" && st.Job != "" {
		j.EngineJob = st.Job
		save = true
	}
	in, out := ioTotals(st.Operators)
	if e.status != nil {
		if dt := now.Sub(e.statusAt).Seconds(); dt > 0 {
			pin, pout := ioTotals(e.status.Operators)
			e.inRate, e.outRate = max(0, float64(in-pin)/dt), max(0, float64(out-pout)/dt)
		}
	}
	e.status, e.statusAt = &st, now
	// Checkpoints arrive newest first; count those not seen before.
	for i := len(st.Checkpoints) - 1; i >= 0; i-- {
		c := st.Checkpoints[i]
		if c.ID <= e.lastSeenID {
			continue
		}
		e.lastSeenID = c.ID
		if c.Aborted != "" {
			r.log.Warn("checkpoint aborted", "job", j.ID, "checkpoint", c.ID, "reason", c.Aborted)
			e.metrics.aborted++
			continue
		}
		r.log.Debug("checkpoint completed", "job", j.ID, "checkpoint", c.ID, "kind", c.Kind, "duration_ms", c.DurationMillis, "bytes", c.Bytes)
		e.metrics.completed++
		e.metrics.lastDuration = time.Duration(c.DurationMillis) * time.Millisecond
		e.metrics.lastBytes = c.Bytes
		e.progressed = true
		if j.ConsecutiveFailures > 0 && j.State == StateRunning {
			// Progress: the crash loop, if any, is over.
			j.ConsecutiveFailures = 0
			save = true
		}
	}
	if save {
		_ = r.saveLocked()
	}
}

// ioTotals sums the records the sources emitted and the sinks received.
func ioTotals(ops []engine.OperatorStatus) (in, out int64) {
	for _, o := range ops {
		switch o.Kind {
		case "source":
			in += o.RecordsOut
		case "sink":
			out += o.RecordsIn
		}
	}
	return in, out
}

// silent explains a job that runs but never answered on its control socket:
// a binary that does not serve engine.ServeControl (it calls engine.Run
// itself instead of engine.Main or engine.RunMain) cannot report progress
// nor take checkpoint, savepoint and stop commands.
func (r *Runner) silent(e *entry, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.job.State == StateStarting && e.job.Reason == "" {
		e.job.Reason = "no status from the job's control socket yet (does the binary run through engine.Main or engine.RunMain?): " + err.Error()
	}
}
