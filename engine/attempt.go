package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// attempt is one execution of the job, from a restore point until it
// finishes or fails. Every goroutine it starts belongs to its errgroup.
type attempt struct {
	job      *Job
	cfg      Config
	token    string
	restored *checkpoint.Manifest
	par      map[*vertex]int
	parts    []partitioning // by edge index
	links    []any          // by edge index: [][]*pipe[T], [from][to]
	boxes    map[*vertex][]*mailbox
	envs     []*taskEnv
	inbox    chan any
	uploads  chan func(context.Context)
	gc       chan struct{}
	coordCfg checkpoint.CoordinatorConfig

	mu            sync.Mutex
	lastTriggered uint64
	triggered     map[uint64]triggered
	finished      bool
}

// triggered remembers when and what was triggered, for durations and
// status, and holds the context of the checkpoint's uploads: cancelled when
// the checkpoint ends, so that an upload hung on an unresponsive store does
// not hold an upload worker (and every later checkpoint) after its
// checkpoint was aborted.
type triggered struct {
	at      time.Time
	barrier checkpoint.Barrier
	ctx     context.Context
	cancel  context.CancelCauseFunc
}

// endTriggered forgets checkpoint id and cancels its uploads.
func (a *attempt) endTriggered(id uint64) triggered {
	a.mu.Lock()
	tr, ok := a.triggered[id]
	delete(a.triggered, id)
	a.mu.Unlock()
	if ok {
		tr.cancel(fmt.Errorf("checkpoint %d ended", id))
	}
	return tr
}

// uploadContext is the context of checkpoint id's uploads (it ends with
// the attempt too); a cancelled one if the checkpoint already ended.
func (a *attempt) uploadContext(ctx context.Context, id uint64) context.Context {
	a.mu.Lock()
	tr, ok := a.triggered[id]
	a.mu.Unlock()
	if ok {
		return tr.ctx
	}
	c, cancel := context.WithCancelCause(ctx)
	cancel(fmt.Errorf("checkpoint %d ended before its upload started", id))
	return c
}

// taskEnv is everything one subtask needs from its attempt.
type taskEnv struct {
	att         *attempt
	v           *vertex
	index       int
	parallelism int
	id          checkpoint.TaskID
	mb          *mailbox
	keyGroups   checkpoint.KeyGroupRange
	restored    restoredState
	// Records read and emitted, counted per batch for status and metrics.
	recordsIn, recordsOut atomic.Int64
	// Durations of the latest barrier alignment and sink commit.
	lastAlignment, lastCommit atomic.Int64
	// What the subtask's connector reports (MetricsReporter).
	gauges connectorGauges
}

// restoredState is a subtask's share of the restored checkpoint.
type restoredState struct {
	checkpointID uint64
	keyed        []checkpoint.Handle
	positions    []checkpoint.SourcePosition
	committables []checkpoint.Committable
	values       []checkpoint.NamedValue
}

func newAttempt(job *Job, cfg Config, restored *checkpoint.Manifest, nextID uint64, completed []uint64) (*attempt, error) {
	var tok [6]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("attempt token: %w", err)
	}
	a := &attempt{
		job: job, cfg: cfg, token: hex.EncodeToString(tok[:]), restored: restored,
		par: map[*vertex]int{}, boxes: map[*vertex][]*mailbox{},
		gc: make(chan struct{}, 1), triggered: map[uint64]triggered{},
	}
	for _, v := range job.vertices {
		p := job.parallelismOf(v)
		if cfg.Parallelism > 0 && !v.parallelismSet {
			p = cfg.Parallelism
		}
		if p > job.maxParallelism {
			return nil, permanent(fmt.Errorf("operator %q: parallelism %d exceeds max parallelism %d", v.name, p, job.maxParallelism))
		}
		a.par[v] = p
		boxes := make([]*mailbox, p)
		for i := range boxes {
			boxes[i] = newMailbox()
		}
		a.boxes[v] = boxes
	}
	a.parts = make([]partitioning, len(job.edges))
	a.links = make([]any, len(job.edges))
	for i, e := range job.edges {
		ends := e.ends()
		switch {
		case ends.part == hashed:
			a.parts[i] = hashed
		case a.par[ends.from] == a.par[ends.to]:
			a.parts[i] = forward
		default:
			a.parts[i] = rebalance
		}
		e.materialize(a)
	}
	if err := a.checkRestore(); err != nil {
		return nil, permanent(err)
	}
	cc := checkpoint.CoordinatorConfig{
		Job: job.name, MaxParallelism: job.maxParallelism,
		IntervalTicks: cfg.ticks(cfg.CheckpointInterval), TimeoutTicks: max(1, cfg.ticks(cfg.CheckpointTimeout)),
		MinPauseTicks: cfg.ticks(cfg.MinPause), TolerableFailures: cfg.TolerableFailures,
		Retained: cfg.Retained, NextID: nextID, Completed: completed,
	}
	for _, v := range job.vertices {
		p := a.par[v]
		cc.Operators = append(cc.Operators, checkpoint.OperatorInfo{Name: v.name, Parallelism: p})
		if v.kind == kindSource {
			cc.Sources = append(cc.Sources, v.name)
		}
		for i := 0; i < p; i++ {
			env := &taskEnv{att: a, v: v, index: i, parallelism: p, mb: a.boxes[v][i],
				id: checkpoint.TaskID{Operator: v.name, Subtask: i}}
			if v.keyed {
				env.keyGroups = KeyGroupRange(job.maxParallelism, p, i)
			}
			env.restored = a.restoredFor(v, i, p, env.keyGroups)
			a.envs = append(a.envs, env)
		}
	}
	a.coordCfg = cc
	a.inbox = make(chan any, 4*len(a.envs)+16)
	a.uploads = make(chan func(context.Context), 2*len(a.envs))
	return a, nil
}

// checkRestore refuses a restore point that does not fit the job.
func (a *attempt) checkRestore() error {
	m := a.restored
	if m == nil {
		return nil
	}
	if m.Job != a.job.name {
		return fmt.Errorf("restore %s %d: it belongs to job %q, not %q", m.Kind, m.ID, m.Job, a.job.name)
	}
	if m.MaxParallelism != a.job.maxParallelism {
		return fmt.Errorf("restore %s %d: max parallelism %d differs from the job's %d (key groups cannot be remapped)", m.Kind, m.ID, m.MaxParallelism, a.job.maxParallelism)
	}
	for _, op := range m.Operators {
		if _, ok := a.job.byName[op.Name]; !ok && !a.cfg.AllowNonRestoredState {
			return fmt.Errorf("restore %s %d: it holds state of operator %q, which the job no longer has (allow non-restored state to drop it)", m.Kind, m.ID, op.Name)
		}
	}
	return nil
}

// restoredFor gives subtask i of p its share: keyed handles overlapping its
// key groups, every source position, and the committables and values of old
// subtasks j with j mod p == i.
func (a *attempt) restoredFor(v *vertex, i, p int, kgs checkpoint.KeyGroupRange) restoredState {
	m := a.restored
	if m == nil {
		return restoredState{}
	}
	rs := restoredState{checkpointID: m.ID}
	op := m.Operator(v.name)
	if op == nil {
		return rs
	}
	for j, st := range op.Subtasks {
		for _, h := range st.Keyed {
			if h.KeyGroups.Intersects(kgs) {
				rs.keyed = append(rs.keyed, h)
			}
		}
		rs.positions = append(rs.positions, st.Positions...)
		if j%p == i {
			rs.committables = append(rs.committables, st.Committables...)
			rs.values = append(rs.values, st.Values...)
		}
	}
	return rs
}

func (e *edge[T]) materialize(a *attempt) {
	pf, pt := a.par[e.from], a.par[e.to]
	pipes := make([][]*pipe[T], pf)
	for i := range pipes {
		pipes[i] = make([]*pipe[T], pt)
		for j := range pipes[i] {
			if a.parts[e.index] != forward || i == j {
				pipes[i][j] = newPipe[T]()
			}
		}
	}
	a.links[e.index] = pipes
}

// newOutput wires a subtask's outgoing links.
func newOutput[T any](ctx context.Context, env *taskEnv) *Output[T] {
	a := env.att
	o := &Output[T]{ctx: ctx, sent: &env.recordsOut}
	for _, ae := range env.v.outputs {
		e := ae.(*edge[T])
		row := a.links[e.index].([][]*pipe[T])[env.index]
		boxes := a.boxes[e.to]
		oe := outEdge[T]{part: a.parts[e.index]}
		for j, p := range row {
			if p != nil {
				oe.links = append(oe.links, link[T]{pipe: p, wake: boxes[j].wake})
			}
		}
		oe.bufs = make([][]T, len(oe.links))
		for i, l := range oe.links {
			oe.bufs[i] = l.batch()
		}
		if oe.part == hashed {
			maxPar := a.job.maxParallelism
			oe.keyGroup = e.newKeyGroupFn(maxPar)
			oe.owner = make([]int, maxPar)
			for kg := range oe.owner {
				oe.owner[kg] = subtaskForKeyGroup(maxPar, len(oe.links), kg)
			}
		}
		o.edges = append(o.edges, oe)
	}
	return o
}

// gateLinks collects a subtask's incoming links.
func gateLinks[T any](env *taskEnv) []*pipe[T] {
	var in []*pipe[T]
	for _, ae := range env.v.inputs {
		e := ae.(*edge[T])
		for _, row := range env.att.links[e.index].([][]*pipe[T]) {
			if p := row[env.index]; p != nil {
				in = append(in, p)
			}
		}
	}
	return in
}

// run executes the attempt until the job finishes (nil) or fails.
func (a *attempt) run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	tasksDone := make(chan struct{})
	var wg sync.WaitGroup
	for _, env := range a.envs {
		runner, err := env.v.newTask(env)
		if err != nil {
			return fmt.Errorf("%s: %w", env.id, err)
		}
		wg.Add(1)
		g.Go(func() error {
			defer wg.Done()
			if err := protect(func() error { return runner.run(gctx) }); err != nil {
				return fmt.Errorf("%s %s: %w", env.v.kind, env.id, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		wg.Wait()
		close(tasksDone)
		return nil
	})
	g.Go(func() error { return protect(func() error { return a.coordinate(gctx, tasksDone) }) })
	for i := 0; i < max(1, a.cfg.UploadConcurrency); i++ {
		g.Go(func() error { return protect(func() error { return a.uploadWorker(gctx, tasksDone) }) })
	}
	g.Go(func() error { return a.gcWorker(gctx, tasksDone) })
	return g.Wait()
}

// protect turns a panic into an error carrying the stack.
func protect(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return f()
}

func (a *attempt) fault(p FaultPoint, task checkpoint.TaskID, id uint64) error {
	if a.cfg.Faults == nil {
		return nil
	}
	if err := a.cfg.Faults(p, task, id); err != nil {
		return fmt.Errorf("injected fault at %s (checkpoint %d): %w", p, id, err)
	}
	return nil
}

func (a *attempt) toCoordinator(ctx context.Context, msg any) error {
	select {
	case a.inbox <- msg:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// acknowledge sends a subtask's ack, after uploading its keyed state
// asynchronously when there is any. An upload failure declines the
// checkpoint; the job goes on.
func (a *attempt) acknowledge(ctx context.Context, env *taskEnv, b checkpoint.Barrier, st checkpoint.SubtaskState, pending state.PendingSnapshot) error {
	if pending == nil {
		return a.toCoordinator(ctx, checkpoint.Ack{ID: b.ID, Task: env.id, State: st})
	}
	job := func(ctx context.Context) {
		err := a.fault(FaultUpload, env.id, b.ID)
		if err == nil {
			st.Keyed, err = pending.Upload(a.uploadContext(ctx, b.ID), &uploader{a: a, env: env, b: b})
		}
		var msg any = checkpoint.Ack{ID: b.ID, Task: env.id, State: st}
		if err != nil {
			msg = checkpoint.Decline{ID: b.ID, Task: env.id, Reason: fmt.Sprintf("upload state of %s: %v", env.id, err)}
		}
		_ = a.toCoordinator(ctx, msg) // fails only when the attempt ends
	}
	select {
	case a.uploads <- job:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (a *attempt) uploadWorker(ctx context.Context, tasksDone <-chan struct{}) error {
	for {
		select {
		case job := <-a.uploads:
			job(ctx)
		case <-tasksDone:
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (a *attempt) gcWorker(ctx context.Context, tasksDone <-chan struct{}) error {
	collect := func() {
		// A failed collection leaves garbage, never a broken checkpoint,
		// and the next completed checkpoint retries it: report, go on.
		if _, err := checkpoint.Retain(ctx, a.cfg.Store, a.job.name, a.cfg.Retained); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Warn("checkpoint garbage collection failed; will retry", "job", a.job.name, "err", err)
		}
	}
	for {
		select {
		case <-a.gc:
			collect()
		case <-tasksDone:
			// The final checkpoint's collection may still be pending.
			select {
			case <-a.gc:
				collect()
			default:
			}
			return nil
		case <-ctx.Done():
			return nil
		}
	}
}

func (a *attempt) newBackend(ctx context.Context, env *taskEnv) (state.Backend, error) {
	info := state.SubtaskInfo{
		Job: a.job.name, Operator: env.v.name, Subtask: env.index, Parallelism: env.parallelism,
		MaxParallelism: a.job.maxParallelism, KeyGroups: env.keyGroups,
	}
	b, err := a.cfg.StateBackend.New(ctx, info, env.restored.keyed, &downloader{a: a})
	if err != nil {
		return nil, permanent(fmt.Errorf("restore keyed state of %s from checkpoint %d: %w", env.id, env.restored.checkpointID, err))
	}
	return b, nil
}

// permanentError marks failures that a restart cannot fix (a restore point
// that does not fit or is damaged): the job stops instead of looping.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err is a failure that restarting cannot fix.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
