package checkpoint

import (
	"errors"
	"fmt"
	"slices"
	"sort"
)

// ErrTolerableFailuresExceeded is wrapped by the FailJob error emitted when
// more consecutive checkpoints failed than CoordinatorConfig.TolerableFailures
// allows. The loop may restart the job from its latest completed checkpoint.
var ErrTolerableFailuresExceeded = errors.New("tolerable checkpoint failures exceeded")

// Coordinator decides when checkpoints are triggered, collects the subtasks'
// acknowledgements and declares checkpoints complete or aborted. It is a pure,
// deterministic state machine: Step takes one message and returns the effects
// for the loop to execute in order. It has no clock (time advances only by
// Tick), does no I/O and is not safe for concurrent use: one loop owns it.
//
// At most one checkpoint is pending at a time (Flink with
// max-concurrent-checkpoints = 1), which keeps the aligners simple: each
// waits for one barrier at most, and a newer one means the older was aborted.
type Coordinator struct {
	cfg   CoordinatorConfig
	tasks map[TaskID]bool // every subtask that must acknowledge

	now         int64 // ticks since start
	nextID      uint64
	lastTrigger int64 // tick of the latest trigger of any kind; 0 at start
	lastEnd     int64 // tick the latest checkpoint ended (completed or aborted)
	ended       bool  // whether any checkpoint ended yet, i.e. lastEnd is meaningful

	pending  *pendingCheckpoint
	queue    []TriggerRequest // requested while pending, FIFO, no duplicates
	failures int              // consecutive failed checkpoints (savepoints do not count)

	completed     []uint64 // completed checkpoints (not savepoints), oldest first
	lastCompleted uint64   // latest completed checkpoint or savepoint

	unfinished     map[TaskID]bool // source subtasks that have not finished yet
	finalAbortedAt int64           // tick a final checkpoint last aborted; -1 if never
	finished       bool            // JobFinished emitted
	err            error           // FailJob emitted with this error
	ignored        int
}

type pendingCheckpoint struct {
	barrier     Barrier
	triggeredAt int64
	acks        map[TaskID]SubtaskState
	// writing is set once WriteManifest was emitted. From then on only
	// ManifestWritten decides the outcome: the write may already be durable,
	// and a checkpoint whose manifest is durable is complete, so neither a
	// timeout nor a decline may declare it aborted.
	writing bool
}

// NewCoordinator validates cfg and returns a coordinator that has triggered
// nothing yet. It keeps its own copy of cfg's slices.
func NewCoordinator(cfg CoordinatorConfig) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Operators = slices.Clone(cfg.Operators)
	cfg.Sources = slices.Clone(cfg.Sources)
	cfg.Completed = slices.Clone(cfg.Completed)
	c := &Coordinator{
		cfg:            cfg,
		tasks:          map[TaskID]bool{},
		nextID:         cfg.NextID,
		completed:      slices.Clone(cfg.Completed),
		unfinished:     map[TaskID]bool{},
		finalAbortedAt: -1,
	}
	if n := len(cfg.Completed); n > 0 {
		c.lastCompleted = cfg.Completed[n-1]
	}
	for _, op := range cfg.Operators {
		for i := range op.Parallelism {
			c.tasks[TaskID{op.Name, i}] = true
		}
		if slices.Contains(cfg.Sources, op.Name) {
			for i := range op.Parallelism {
				c.unfinished[TaskID{op.Name, i}] = true
			}
		}
	}
	return c, nil
}

// Validate reports the first problem with the configuration.
func (cfg CoordinatorConfig) Validate() error {
	if cfg.Job == "" {
		return errors.New("checkpoint coordinator: empty job name")
	}
	if cfg.MaxParallelism < 1 {
		return fmt.Errorf("checkpoint coordinator: max parallelism %d: must be >= 1", cfg.MaxParallelism)
	}
	if len(cfg.Operators) == 0 {
		return errors.New("checkpoint coordinator: no operators")
	}
	ops := map[string]bool{}
	for _, op := range cfg.Operators {
		if op.Name == "" {
			return errors.New("checkpoint coordinator: operator with an empty name")
		}
		if ops[op.Name] {
			return fmt.Errorf("checkpoint coordinator: operator %q listed twice", op.Name)
		}
		ops[op.Name] = true
		if op.Parallelism < 1 || op.Parallelism > cfg.MaxParallelism {
			return fmt.Errorf("checkpoint coordinator: operator %q: parallelism %d: must be between 1 and the max parallelism %d",
				op.Name, op.Parallelism, cfg.MaxParallelism)
		}
	}
	// Without a source nobody injects barriers: no checkpoint could ever
	// complete, and a bounded job could never take its final checkpoint.
	if len(cfg.Sources) == 0 {
		return errors.New("checkpoint coordinator: no sources")
	}
	seen := map[string]bool{}
	for _, s := range cfg.Sources {
		if !ops[s] {
			return fmt.Errorf("checkpoint coordinator: source %q is not an operator", s)
		}
		if seen[s] {
			return fmt.Errorf("checkpoint coordinator: source %q listed twice", s)
		}
		seen[s] = true
	}
	switch {
	case cfg.IntervalTicks < 0:
		return fmt.Errorf("checkpoint coordinator: interval %d ticks: must be >= 0 (0 disables periodic checkpoints)", cfg.IntervalTicks)
	case cfg.TimeoutTicks <= 0:
		return fmt.Errorf("checkpoint coordinator: timeout %d ticks: must be > 0", cfg.TimeoutTicks)
	case cfg.MinPauseTicks < 0:
		return fmt.Errorf("checkpoint coordinator: min pause %d ticks: must be >= 0", cfg.MinPauseTicks)
	case cfg.TolerableFailures < 0:
		return fmt.Errorf("checkpoint coordinator: tolerable failures %d: must be >= 0", cfg.TolerableFailures)
	case cfg.Retained < 1:
		return fmt.Errorf("checkpoint coordinator: retained %d: must be >= 1", cfg.Retained)
	case cfg.NextID == 0:
		// Aligners treat every id <= the last one they saw as stale, and
		// they start from 0.
		return errors.New("checkpoint coordinator: next id 0: checkpoint ids start at 1")
	}
	for i, id := range cfg.Completed {
		if i > 0 && id <= cfg.Completed[i-1] {
			return fmt.Errorf("checkpoint coordinator: completed ids %v: not strictly increasing", cfg.Completed)
		}
		// Reusing a completed id would make PutIfAbsent fail and the job
		// with it: the loop must start above every id in the store.
		if id >= cfg.NextID {
			return fmt.Errorf("checkpoint coordinator: completed checkpoint %d >= next id %d: ids must never be reused", id, cfg.NextID)
		}
	}
	return nil
}

// Step applies one message (Tick, TriggerRequest, Ack, Decline,
// ManifestWritten or SourceFinished) and returns the effects to execute, in
// order. Messages that do not apply (stale or duplicate acks, unknown tasks,
// everything after FailJob or JobFinished) change nothing, return nil and are
// counted by Ignored. Any other message type is a wiring bug and panics.
func (c *Coordinator) Step(msg any) []Effect {
	if c.finished || c.err != nil {
		c.ignored++
		return nil
	}
	switch m := msg.(type) {
	case Tick:
		return c.tick()
	case TriggerRequest:
		return c.request(m)
	case Ack:
		return c.ack(m)
	case Decline:
		// Once the manifest is being written every subtask has acked, so
		// a decline can only be stale; and the write may be durable.
		p := c.pending
		if p == nil || p.barrier.ID != m.ID || p.writing || !c.tasks[m.Task] {
			c.ignored++
			return nil
		}
		return c.abort(fmt.Sprintf("declined by %s: %s", m.Task, m.Reason))
	case ManifestWritten:
		return c.manifestWritten(m)
	case SourceFinished:
		return c.sourceFinished(m.Task)
	}
	panic(fmt.Sprintf("checkpoint: coordinator: unexpected message %T", msg))
}

func (c *Coordinator) tick() []Effect {
	c.now++
	var out []Effect
	if p := c.pending; p != nil && !p.writing && c.now-p.triggeredAt >= int64(c.cfg.TimeoutTicks) {
		out = c.abort(fmt.Sprintf("timed out after %d ticks", c.cfg.TimeoutTicks))
	}
	if c.err != nil || c.pending != nil {
		return out // failed, still pending, or a queued request took over
	}
	if c.allSourcesFinished() {
		// A final checkpoint that aborted is retried on the next tick, not
		// at once, so that a persistently failing one runs into the
		// tolerance at the pace of ticks rather than in a tight loop.
		if c.now > c.finalAbortedAt {
			out = append(out, c.trigger(KindCheckpoint, true))
		}
		return out
	}
	if c.cfg.IntervalTicks > 0 &&
		c.now-c.lastTrigger >= int64(c.cfg.IntervalTicks) &&
		(!c.ended || c.now-c.lastEnd >= int64(c.cfg.MinPauseTicks)) {
		out = append(out, c.trigger(KindCheckpoint, false))
	}
	return out
}

func (c *Coordinator) request(r TriggerRequest) []Effect {
	// Once every source has finished, the next trigger is the final
	// checkpoint: it subsumes a checkpoint request, and a savepoint of a
	// job that is about to finish cannot be honoured. Only a savepoint can
	// stop the job.
	if (r.Kind != KindCheckpoint && r.Kind != KindSavepoint) || (r.Stop && r.Kind != KindSavepoint) || c.allSourcesFinished() {
		c.ignored++
		return nil
	}
	if c.pending == nil {
		return []Effect{c.trigger(r.Kind, r.Stop)}
	}
	if !slices.Contains(c.queue, r) {
		c.queue = append(c.queue, r)
	}
	return nil
}

func (c *Coordinator) trigger(k Kind, final bool) Effect {
	b := Barrier{ID: c.nextID, Kind: k, Final: final}
	c.nextID++
	c.lastTrigger = c.now
	c.pending = &pendingCheckpoint{barrier: b, triggeredAt: c.now, acks: map[TaskID]SubtaskState{}}
	return InjectBarrier{Barrier: b}
}

func (c *Coordinator) ack(m Ack) []Effect {
	p := c.pending
	if p == nil || p.barrier.ID != m.ID || !c.tasks[m.Task] {
		c.ignored++
		return nil
	}
	if _, dup := p.acks[m.Task]; dup {
		c.ignored++
		return nil
	}
	// The sender is authoritative for the state's identity, so the
	// manifest cannot list a state under the wrong subtask.
	st := m.State
	st.Operator, st.Subtask = m.Task.Operator, m.Task.Subtask
	p.acks[m.Task] = st
	if len(p.acks) < len(c.tasks) {
		return nil
	}
	p.writing = true
	return []Effect{WriteManifest{Manifest: c.manifest(p)}}
}

func (c *Coordinator) manifest(p *pendingCheckpoint) *Manifest {
	m := &Manifest{
		Job:            c.cfg.Job,
		ID:             p.barrier.ID,
		Kind:           p.barrier.Kind,
		MaxParallelism: c.cfg.MaxParallelism,
	}
	ops := slices.Clone(c.cfg.Operators)
	sort.Slice(ops, func(i, j int) bool { return ops[i].Name < ops[j].Name })
	for _, op := range ops {
		st := OperatorState{Name: op.Name, Parallelism: op.Parallelism}
		for i := range op.Parallelism {
			st.Subtasks = append(st.Subtasks, p.acks[TaskID{op.Name, i}])
		}
		m.Operators = append(m.Operators, st)
	}
	return m
}

func (c *Coordinator) manifestWritten(m ManifestWritten) []Effect {
	p := c.pending
	if p == nil || p.barrier.ID != m.ID || !p.writing {
		c.ignored++
		return nil
	}
	if errors.Is(m.Err, ErrExists) {
		c.pending = nil
		c.err = fmt.Errorf("%s %d of job %q: another incarnation of the job already completed this id, "+
			"so this one cannot continue without breaking exactly-once: %w", p.barrier.Kind, m.ID, c.cfg.Job, m.Err)
		return []Effect{FailJob{Err: c.err}}
	}
	if m.Err != nil {
		return c.abort(fmt.Sprintf("writing the manifest: %v", m.Err))
	}

	c.pending = nil
	c.lastCompleted = m.ID
	c.lastEnd, c.ended = c.now, true
	out := []Effect{NotifyComplete{ID: m.ID, Final: p.barrier.Final}}
	if p.barrier.Kind == KindCheckpoint {
		// A savepoint neither counts as a failure nor clears the count,
		// as in Flink: the tolerance is about periodic checkpoints.
		c.failures = 0
		c.completed = append(c.completed, m.ID)
		if extra := len(c.completed) - c.cfg.Retained; extra > 0 {
			out = append(out, DeleteCheckpoints{IDs: slices.Clone(c.completed[:extra])})
			c.completed = slices.Delete(c.completed, 0, extra)
		}
	}
	if p.barrier.Final {
		c.finished = true
		return append(out, JobFinished{})
	}
	return append(out, c.afterEnd()...)
}

// abort abandons the pending checkpoint and counts the failure.
func (c *Coordinator) abort(reason string) []Effect {
	p := c.pending
	c.pending = nil
	c.lastEnd, c.ended = c.now, true
	out := []Effect{NotifyAborted{ID: p.barrier.ID, Reason: reason}}
	if p.barrier.Kind == KindCheckpoint {
		c.failures++
		if c.failures > c.cfg.TolerableFailures {
			c.err = fmt.Errorf("%w: checkpoint %d aborted (%s); failed checkpoints in a row: %d, tolerated: %d",
				ErrTolerableFailuresExceeded, p.barrier.ID, reason, c.failures, c.cfg.TolerableFailures)
			return append(out, FailJob{Err: c.err})
		}
	}
	if p.barrier.Final && p.barrier.Kind == KindCheckpoint {
		c.finalAbortedAt = c.now
		return out
	}
	// An aborted stop-with-savepoint resumes the job: the sources read on.
	return append(out, c.afterEnd()...)
}

// afterEnd triggers what waited for the pending checkpoint to end: the final
// checkpoint first, else the oldest queued request. Neither waits for the
// interval or the min pause.
func (c *Coordinator) afterEnd() []Effect {
	if c.allSourcesFinished() {
		return []Effect{c.trigger(KindCheckpoint, true)}
	}
	if len(c.queue) == 0 {
		return nil
	}
	r := c.queue[0]
	c.queue = c.queue[1:]
	return []Effect{c.trigger(r.Kind, r.Stop)}
}

func (c *Coordinator) sourceFinished(t TaskID) []Effect {
	if !c.unfinished[t] {
		c.ignored++ // not a source subtask, or reported twice
		return nil
	}
	delete(c.unfinished, t)
	if !c.allSourcesFinished() {
		return nil
	}
	c.queue = nil // subsumed by, or impossible after, the final checkpoint
	if c.pending != nil {
		return nil
	}
	return []Effect{c.trigger(KindCheckpoint, true)}
}

func (c *Coordinator) allSourcesFinished() bool { return len(c.unfinished) == 0 }

// Pending returns the id of the checkpoint or savepoint in progress, if any.
func (c *Coordinator) Pending() (id uint64, ok bool) {
	if c.pending == nil {
		return 0, false
	}
	return c.pending.barrier.ID, true
}

// PendingBarrier returns the barrier of the checkpoint in progress, if any.
func (c *Coordinator) PendingBarrier() (Barrier, bool) {
	if c.pending == nil {
		return Barrier{}, false
	}
	return c.pending.barrier, true
}

// LastCompleted is the id of the latest completed checkpoint or savepoint
// (the last of CoordinatorConfig.Completed before any completes); 0 if none.
func (c *Coordinator) LastCompleted() uint64 { return c.lastCompleted }

// Retained returns the completed checkpoints that retention keeps, oldest
// first (savepoints are never among them).
func (c *Coordinator) Retained() []uint64 { return slices.Clone(c.completed) }

// ConsecutiveFailures is the number of checkpoints that failed since the
// latest completed one.
func (c *Coordinator) ConsecutiveFailures() int { return c.failures }

// Finished reports whether the final checkpoint completed (JobFinished).
func (c *Coordinator) Finished() bool { return c.finished }

// Err returns the error of the FailJob effect, once emitted.
func (c *Coordinator) Err() error { return c.err }

// Ignored counts the messages that changed nothing: acks and declines for
// checkpoints that are not pending, duplicate acks, messages from unknown
// tasks, stray ManifestWritten, invalid or superseded trigger requests, and
// every message after FailJob or JobFinished.
func (c *Coordinator) Ignored() int { return c.ignored }

// Ticks is the number of ticks stepped so far.
func (c *Coordinator) Ticks() int64 { return c.now }
