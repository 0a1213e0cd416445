package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// Control lets a supervisor (the onceflow runner, a test) act on a running
// job: trigger a checkpoint or savepoint, stop the job with a savepoint, and
// read its status. Pass it in Config.Control; it outlives attempts.
type Control struct {
	mu       sync.Mutex
	job      string
	att      *attempt
	attempt  int
	state    string
	restarts int
	failure  string
	failedAt time.Time
	history  []CheckpointInfo // newest last, bounded
	base     map[string]*OperatorStatus
	waiters  []*waiter
	changed  chan struct{} // closed and replaced at every state change
	stopped  bool          // a stop-with-savepoint completed
}

// NewControl returns a Control to pass to Run.
func NewControl() *Control {
	return &Control{state: StateCreated, base: map[string]*OperatorStatus{}, changed: make(chan struct{})}
}

// setStateLocked changes the state and wakes WaitRunning.
func (c *Control) setStateLocked(state string) {
	c.state = state
	close(c.changed)
	c.changed = make(chan struct{})
}

// WaitRunning waits until an attempt of the job is running.
func (c *Control) WaitRunning(ctx context.Context) error {
	for {
		c.mu.Lock()
		state, changed := c.state, c.changed
		c.mu.Unlock()
		switch state {
		case StateRunning:
			return nil
		case StateFinished, StateFailed, StateCancelled:
			return fmt.Errorf("%w (state %s)", errNotRunning, state)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Job states reported by Status.
const (
	StateCreated    = "created"
	StateRunning    = "running"
	StateRestarting = "restarting"
	StateFinished   = "finished"
	StateFailed     = "failed"
	StateCancelled  = "cancelled"
)

// Status is a snapshot of a job's progress.
type Status struct {
	Job         string           `json:"job"`
	State       string           `json:"state"`
	Attempt     int              `json:"attempt"`
	Restarts    int              `json:"restarts"`
	LastFailure string           `json:"last_failure,omitempty"`
	FailedAt    *time.Time       `json:"failed_at,omitempty"`
	Checkpoints []CheckpointInfo `json:"checkpoints"` // newest first
	Operators   []OperatorStatus `json:"operators"`
}

// CheckpointInfo describes a completed or aborted checkpoint or savepoint.
type CheckpointInfo struct {
	ID             uint64    `json:"id"`
	Kind           string    `json:"kind"`
	Manifest       string    `json:"manifest,omitempty"` // object name in the store: a restore point
	At             time.Time `json:"at"`
	DurationMillis int64     `json:"duration_ms"`
	Bytes          int64     `json:"bytes"`
	Aborted        string    `json:"aborted,omitempty"` // the reason, if it was aborted
}

// OperatorStatus counts an operator's records over the whole run (all
// attempts; replayed records count again).
type OperatorStatus struct {
	Name               string `json:"name"`
	Kind               string `json:"kind"` // source, operator or sink
	Parallelism        int    `json:"parallelism"`
	RecordsIn          int64  `json:"records_in"`
	RecordsOut         int64  `json:"records_out"`
	LastAlignmentNanos int64  `json:"last_alignment_ns"`
	LastCommitNanos    int64  `json:"last_commit_ns"`
	// Gauges of the current attempt, from connectors that report them
	// (MetricsReporter); nil when none does, or when no attempt runs.
	// SourceLagRecords sums the subtasks' lags; OpenTransactionAgeNanos is
	// the oldest open transaction among the subtasks (0: none open).
	SourceLagRecords        *int64 `json:"source_lag_records,omitempty"`
	OpenTransactionAgeNanos *int64 `json:"open_transaction_age_ns,omitempty"`
}

const historySize = 20

type waiter struct {
	kind checkpoint.Kind
	stop bool
	id   uint64 // 0 until its barrier is injected
	done chan struct{}
	res  CheckpointInfo
	err  error
}

// Checkpoint triggers a checkpoint and waits for the next one to complete.
func (c *Control) Checkpoint(ctx context.Context) (CheckpointInfo, error) {
	return c.request(ctx, checkpoint.KindCheckpoint, false)
}

// Savepoint triggers a savepoint and waits for it to complete.
func (c *Control) Savepoint(ctx context.Context) (CheckpointInfo, error) {
	return c.request(ctx, checkpoint.KindSavepoint, false)
}

// StopWithSavepoint takes a savepoint after which the sources read nothing
// more; once it completes and every sink committed, Run returns nil. If the
// savepoint fails, the job goes on and the error is returned.
func (c *Control) StopWithSavepoint(ctx context.Context) (CheckpointInfo, error) {
	info, err := c.request(ctx, checkpoint.KindSavepoint, true)
	if err == nil {
		c.mu.Lock()
		c.stopped = true
		c.mu.Unlock()
	}
	return info, err
}

// Stopped reports whether the job ended through StopWithSavepoint.
func (c *Control) Stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopped
}

var errNotRunning = errors.New("job is not running")

func (c *Control) request(ctx context.Context, kind checkpoint.Kind, stop bool) (CheckpointInfo, error) {
	w := &waiter{kind: kind, stop: stop, done: make(chan struct{})}
	c.mu.Lock()
	att := c.att
	if att == nil {
		c.mu.Unlock()
		return CheckpointInfo{}, fmt.Errorf("%s: %w (state %s)", kind, errNotRunning, c.state)
	}
	c.waiters = append(c.waiters, w)
	c.mu.Unlock()
	if err := att.toCoordinator(ctx, checkpoint.TriggerRequest{Kind: kind, Stop: stop}); err != nil {
		c.resolve(w, CheckpointInfo{}, fmt.Errorf("%s: the attempt ended: %w", kind, err))
	}
	select {
	case <-w.done:
		return w.res, w.err
	case <-ctx.Done():
		c.resolve(w, CheckpointInfo{}, ctx.Err())
		return CheckpointInfo{}, ctx.Err()
	}
}

// resolve completes w once and forgets it. Callers must not hold c.mu.
func (c *Control) resolve(w *waiter, res CheckpointInfo, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.resolveLocked(w, res, err)
}

func (c *Control) resolveLocked(w *waiter, res CheckpointInfo, err error) {
	for i, x := range c.waiters {
		if x == w {
			c.waiters = append(c.waiters[:i], c.waiters[i+1:]...)
			w.res, w.err = res, err
			close(w.done)
			return
		}
	}
}

// Status returns the job's current status.
func (c *Control) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Job: c.job, State: c.state, Attempt: c.attempt, Restarts: c.restarts, LastFailure: c.failure}
	if !c.failedAt.IsZero() {
		t := c.failedAt
		s.FailedAt = &t
	}
	for i := len(c.history) - 1; i >= 0; i-- {
		s.Checkpoints = append(s.Checkpoints, c.history[i])
	}
	s.Operators = c.operatorsLocked()
	return s
}

func (c *Control) operatorsLocked() []OperatorStatus {
	var ops []OperatorStatus
	if c.att == nil {
		for _, b := range c.base {
			ops = append(ops, *b)
		}
		sortOperators(ops)
		return ops
	}
	now := time.Now()
	for _, v := range c.att.job.vertices {
		o := OperatorStatus{Name: v.name, Kind: v.kind.String(), Parallelism: c.att.par[v]}
		if b := c.base[v.name]; b != nil {
			o.RecordsIn, o.RecordsOut = b.RecordsIn, b.RecordsOut
		}
		for _, env := range c.att.envs {
			if env.v == v {
				o.RecordsIn += env.recordsIn.Load()
				o.RecordsOut += env.recordsOut.Load()
				o.LastAlignmentNanos = max(o.LastAlignmentNanos, env.lastAlignment.Load())
				o.LastCommitNanos = max(o.LastCommitNanos, env.lastCommit.Load())
				env.gauges.addTo(&o, now)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

// The hooks below are called by Run and the coordinator loop.

func (c *Control) attemptStarted(job string, att *attempt, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.job, c.att, c.attempt = job, att, n
	c.setStateLocked(StateRunning)
}

// attemptEnded folds the attempt's counters into the totals and fails every
// waiter: its checkpoint can no longer complete in this attempt.
func (c *Control) attemptEnded(err error, state string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.att != nil {
		for _, o := range c.operatorsLocked() {
			o := o
			// Gauges describe a running attempt; between attempts
			// there is none to report.
			o.SourceLagRecords, o.OpenTransactionAgeNanos = nil, nil
			c.base[o.Name] = &o
		}
	}
	c.att = nil
	c.setStateLocked(state)
	if err != nil && state != StateCancelled {
		c.failure, c.failedAt = err.Error(), time.Now()
		if state == StateRestarting {
			c.restarts++
		}
	}
	for len(c.waiters) > 0 {
		reason := errNotRunning
		if err != nil {
			reason = fmt.Errorf("%w: %v", errNotRunning, err)
		}
		c.resolveLocked(c.waiters[0], CheckpointInfo{}, reason)
	}
}

func (c *Control) injected(b checkpoint.Barrier) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range c.waiters {
		if w.id == 0 && w.kind == b.Kind && (w.kind == checkpoint.KindCheckpoint || w.stop == b.Final) {
			w.id = b.ID
			return
		}
	}
}

// record keeps a completed or aborted checkpoint in the history and resolves
// the waiter that triggered it.
func (c *Control) record(info CheckpointInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.history = append(c.history, info)
	if len(c.history) > historySize {
		c.history = c.history[len(c.history)-historySize:]
	}
	for i := 0; i < len(c.waiters); {
		w := c.waiters[i]
		if w.id != info.ID {
			i++
			continue
		}
		var err error
		if info.Aborted != "" {
			err = fmt.Errorf("%s %d aborted: %s", info.Kind, info.ID, info.Aborted)
		}
		c.resolveLocked(w, info, err)
	}
}

func sortOperators(ops []OperatorStatus) {
	slices.SortFunc(ops, func(a, b OperatorStatus) int { return strings.Compare(a.Name, b.Name) })
}
