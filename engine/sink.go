package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// SinkWriter writes records to an external system. One instance runs per
// sink subtask. Optional capabilities: Flusher (at-least-once sinks),
// TransactionalSink (exactly-once), CheckpointListener, MetricsReporter,
// io.Closer.
type SinkWriter[T any] interface {
	// Write writes records. Like io.Writer, it must not retain the slice:
	// the runtime reuses it once Write returns (copy records to keep them).
	Write(ctx context.Context, records []T) error
}

// Flusher is called on every checkpoint barrier: once it returns, every record
// written before the barrier must be durable (at-least-once delivery).
type Flusher interface {
	Flush(ctx context.Context) error
}

// TransactionalSink is the two-phase-commit protocol of an exactly-once sink
// (DESIGN.md section 7). Records are written into an open transaction.
//
//   - PreCommit runs on barrier n, on the record path: flush and durably
//     prepare the open transaction, start the next one, and return the
//     committable that lets any process commit the prepared one later (nil
//     when nothing was written). It goes into checkpoint n.
//   - Commit runs when a checkpoint holding the committables completed. It
//     must be idempotent: committing an already committed transaction is
//     success; a transaction that can no longer be committed (expired,
//     fenced, lost) is an error, never skipped.
//   - Recover runs at the start of every attempt, before any Write, with the
//     committables of the restored checkpoint that this subtask owns (old
//     subtask j's go to new subtask j mod parallelism). It commits them and
//     aborts every other transaction this subtask may own from an earlier
//     incarnation, including those of old subtasks j with j mod parallelism
//     equal to this subtask's index.
type TransactionalSink interface {
	Recover(ctx context.Context, committables []checkpoint.Committable) error
	PreCommit(ctx context.Context, checkpointID uint64) ([]byte, error)
	Commit(ctx context.Context, committables []checkpoint.Committable) error
}

// AsyncPreCommitter is a TransactionalSink whose pre-commit need not stop
// the record path. Waiting on the barrier until every record of the
// transaction is acknowledged stalled the whole pipeline behind the sink
// (measured with Kafka at a million records a second: 20 to 60 ms per
// checkpoint and subtask); instead the engine calls StartPreCommit on the
// barrier, then finishes the pre-commit on another goroutine while the
// subtask goes on writing.
//
//   - StartPreCommit runs on barrier n, on the record path, instead of
//     PreCommit: it closes the open transaction to new records (later
//     Writes go into the next transaction) and returns finish (nil when
//     nothing was written).
//   - finish waits until the closed transaction is durably prepared and
//     returns its committable, like PreCommit. It runs on the sink's
//     preparer goroutine, concurrently with Write and Commit (the sink makes
//     that safe), never concurrently with another finish: finishes run in
//     barrier order, and Close runs after the last one returned. Commit
//     never receives a committable before its finish returned it. A finish
//     error fails the subtask, as a PreCommit error does.
type AsyncPreCommitter interface {
	StartPreCommit(ctx context.Context, checkpointID uint64) (finish func(context.Context) ([]byte, error), err error)
}

// PreCommitNow runs a's pre-commit start to finish on the caller's
// goroutine: the PreCommit of an AsyncPreCommitter.
func PreCommitNow(ctx context.Context, a AsyncPreCommitter, checkpointID uint64) ([]byte, error) {
	finish, err := a.StartPreCommit(ctx, checkpointID)
	if finish == nil || err != nil {
		return nil, err
	}
	return finish(ctx)
}

// Sink writes s with writers made by newWriter, one per subtask.
func Sink[T any](s Stream[T], name string, newWriter func(ctx *Context) (SinkWriter[T], error), opts ...OperatorOption) {
	j := s.job
	v := j.addVertex(name, kindSink, opts)
	connect(s, v, nil)
	v.newTask = func(env *taskEnv) (taskRunner, error) {
		return newOneInputTask(env, &sinkProc[T]{newWriter: newWriter}), nil
	}
}

// sinkProc adapts a SinkWriter to the task loop.
type sinkProc[T any] struct {
	newWriter func(*Context) (SinkWriter[T], error)
	w         SinkWriter[T]
	ctx       context.Context
	s         sinkSide
}

func (p *sinkProc[T]) open(c *Context) error {
	w, err := p.newWriter(c)
	if err != nil {
		return err
	}
	p.w, p.ctx = w, c.ctx
	p.s.env = c.env
	p.s.flusher, _ = w.(Flusher)
	p.s.tx, _ = w.(TransactionalSink)
	p.s.metrics, _ = w.(MetricsReporter)
	if p.s.tx != nil {
		if err := p.s.tx.Recover(c.ctx, c.env.restored.committables); err != nil {
			return fmt.Errorf("recover transactions of checkpoint %d: %w", c.env.restored.checkpointID, err)
		}
		if a, ok := w.(AsyncPreCommitter); ok {
			p.s.prep = startPreparer(c.ctx, c.env, a)
		}
	}
	publishMetrics(&p.s.env.gauges, p.s.metrics)
	return nil
}

func (p *sinkProc[T]) process(records []T, _ *Output[struct{}]) error {
	err := p.w.Write(p.ctx, records)
	publishMetrics(&p.s.env.gauges, p.s.metrics)
	return err
}

func (p *sinkProc[T]) user() any       { return p.w }
func (p *sinkProc[T]) side() *sinkSide { return &p.s }

// sinkSide tracks pre-committed transactions until a checkpoint holding them
// completes. A checkpoint's committables include every earlier one not yet
// committed, so an aborted checkpoint's transaction is committed by the next
// completed one.
type sinkSide struct {
	env     *taskEnv
	flusher Flusher
	tx      TransactionalSink
	metrics MetricsReporter // the writer, if it reports metrics
	pending []*prepared     // oldest first
	prep    *preparer       // when the writer is an AsyncPreCommitter
}

// prepared is the pre-committed transaction of one checkpoint: its
// committable, once done is closed.
type prepared struct {
	id   uint64
	done chan struct{}
	data []byte // nil: the transaction turned out empty
	err  error
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// preCommit pre-commits on barrier id and returns the committables its
// snapshot carries. An AsyncPreCommitter's pre-commit is finished, and the
// snapshot acknowledged, by the preparer instead (startPreCommit).
func (s *sinkSide) preCommit(ctx context.Context, id uint64) ([]checkpoint.Committable, error) {
	if s.flusher != nil {
		if err := s.flusher.Flush(ctx); err != nil {
			return nil, fmt.Errorf("flush sink: %w", err)
		}
	}
	if s.tx == nil {
		return nil, nil
	}
	data, err := s.tx.PreCommit(ctx, id)
	publishMetrics(&s.env.gauges, s.metrics) // its open transaction was just closed
	if err != nil {
		return nil, fmt.Errorf("pre-commit: %w", err)
	}
	if err := s.env.att.fault(FaultPreCommit, s.env.id, id); err != nil {
		return nil, err
	}
	if data != nil {
		s.pending = append(s.pending, &prepared{id: id, done: closedChan, data: data})
	}
	return committables(s.pending)
}

// committables lists what ps carry, all done. It fails if one of them
// failed: no later checkpoint may complete without its records.
func committables(ps []*prepared) ([]checkpoint.Committable, error) {
	var cs []checkpoint.Committable
	for _, p := range ps {
		<-p.done
		if p.err != nil {
			return nil, fmt.Errorf("the transaction of checkpoint %d was not prepared: %w", p.id, p.err)
		}
		if p.data != nil {
			cs = append(cs, checkpoint.Committable{CheckpointID: p.id, Data: p.data})
		}
	}
	return cs, nil
}

// commitUpTo commits every pending transaction of checkpoints <= id.
func (s *sinkSide) commitUpTo(ctx context.Context, env *taskEnv, id uint64) error {
	n := 0
	for n < len(s.pending) && s.pending[n].id <= id {
		n++
	}
	if n == 0 {
		return nil
	}
	// Checkpoint id completed, so every pre-commit it carries is done.
	cs, err := committables(s.pending[:n])
	if err != nil {
		return err
	}
	if err := env.att.fault(FaultCommit, env.id, id); err != nil {
		return err
	}
	start := time.Now()
	if err := s.tx.Commit(ctx, cs); err != nil {
		return fmt.Errorf("commit transactions of checkpoint %d: %w", id, err)
	}
	env.lastCommit.Store(int64(time.Since(start)))
	clear(s.pending[:n])
	s.pending = append(s.pending[:0], s.pending[n:]...)
	return nil
}

// Permanent marks err as a failure that restarting cannot fix, such as a
// connector configuration that can never work or a pre-committed transaction
// that the external system lost: the job stops with err instead of
// restarting into the same failure.
func Permanent(err error) error { return permanent(err) }

// CheckpointTiming is what a transactional sink must know about checkpoints
// and restarts to check, at start, that its prepared transactions outlive
// them: a transaction pre-committed for checkpoint n waits for n (or, if n
// fails, a later checkpoint) to complete, or for a restart to recover it.
type CheckpointTiming struct {
	Interval, Timeout, MinPause time.Duration
	// TolerableFailures is how many consecutive checkpoints may fail
	// without a restart; the transaction waits through all of them.
	TolerableFailures int
	// MaxRestartDelay is the longest the restart strategy waits before
	// the next attempt recovers (0 when it never restarts).
	MaxRestartDelay time.Duration
}

// CheckpointTiming returns the job's checkpoint and restart timing.
func (c *Context) CheckpointTiming() CheckpointTiming {
	cfg := c.env.att.cfg
	t := CheckpointTiming{Interval: cfg.CheckpointInterval, Timeout: cfg.CheckpointTimeout,
		MinPause: cfg.MinPause, TolerableFailures: cfg.TolerableFailures}
	switch r := cfg.Restart; r.Kind {
	case RestartFixedDelay, RestartFailureRate:
		t.MaxRestartDelay = r.Delay
	case RestartExponentialBackoff:
		t.MaxRestartDelay = r.Max + time.Duration(float64(r.Max)*r.Jitter)
	}
	return t
}
