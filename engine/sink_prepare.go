package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/onceflow/onceflow/checkpoint"
)

// preparer finishes an AsyncPreCommitter's pre-commits, in barrier order,
// and acknowledges each barrier once every transaction its snapshot
// carries is prepared. Its goroutine belongs to the sink subtask, which
// stops it before closing the writer; a failure reaches the subtask through
// its mailbox.
type preparer struct {
	env    *taskEnv
	sink   AsyncPreCommitter
	jobs   chan prepJob
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// prepJob is one barrier's acknowledgement, and the pre-commit to finish
// first (none when nothing was written since the last barrier).
type prepJob struct {
	b      checkpoint.Barrier
	st     checkpoint.SubtaskState
	carry  []*prepared // the snapshot's committables, p included
	p      *prepared
	finish func(context.Context) ([]byte, error)
}

// prepQueue bounds the barriers waiting for their pre-commit: beyond it
// the record path waits (backpressure); a sink's pool of transactions
// bounds them anyway.
const prepQueue = 16

func startPreparer(ctx context.Context, env *taskEnv, sink AsyncPreCommitter) *preparer {
	ctx, cancel := context.WithCancel(ctx)
	p := &preparer{env: env, sink: sink, jobs: make(chan prepJob, prepQueue), cancel: cancel}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		dead, kill := context.WithCancel(ctx)
		kill()
		failed := false
		for job := range p.jobs {
			if failed {
				// Nothing more is acknowledged: every later snapshot
				// carries the failed one. The finish still runs, with a
				// cancelled context, to release what it holds (the file
				// sink's staging file); recovery aborts its transaction.
				if job.finish != nil {
					_ = protect(func() error { _, err := job.finish(dead); return err })
				}
				continue
			}
			if err := protect(func() error { return p.do(ctx, job) }); err != nil {
				failed = true
				if ctx.Err() == nil {
					env.mb.push(control{kind: ctlFailed, err: err})
				}
			}
		}
	}()
	return p
}

func (p *preparer) do(ctx context.Context, job prepJob) error {
	if job.p != nil {
		data, err := job.finish(ctx)
		if err == nil {
			err = p.env.att.fault(FaultPreCommit, p.env.id, job.b.ID)
		}
		if err != nil {
			err = fmt.Errorf("checkpoint %d: pre-commit: %w", job.b.ID, err)
		}
		job.p.data, job.p.err = data, err
		close(job.p.done)
		if err != nil {
			return err
		}
	}
	cs, err := committables(job.carry)
	if err != nil {
		return fmt.Errorf("checkpoint %d: %w", job.b.ID, err)
	}
	job.st.Committables = cs
	return p.env.att.toCoordinator(ctx, checkpoint.Ack{ID: job.b.ID, Task: p.env.id, State: job.st})
}

// stop ends the goroutine, abandoning unfinished pre-commits (their
// transactions stay open; recovery aborts them). Called by the subtask's
// goroutine, the only one that submits.
func (p *preparer) stop() {
	p.cancel()
	close(p.jobs)
	p.wg.Wait()
}

// startPreCommit is a sink's snapshot on barrier b when its writer is an
// AsyncPreCommitter: close the open transaction, and let the preparer finish
// it and acknowledge b with st. A sink has no keyed state and no output, so
// nothing else of the snapshot remains.
func (s *sinkSide) startPreCommit(ctx context.Context, b checkpoint.Barrier, st checkpoint.SubtaskState) error {
	finish, err := s.prep.sink.StartPreCommit(ctx, b.ID)
	publishMetrics(&s.env.gauges, s.metrics) // its open transaction was just closed
	if err != nil {
		return fmt.Errorf("pre-commit: %w", err)
	}
	job := prepJob{b: b, st: st, finish: finish}
	if finish != nil {
		job.p = &prepared{id: b.ID, done: make(chan struct{})}
		s.pending = append(s.pending, job.p)
	}
	job.carry = append([]*prepared(nil), s.pending...)
	select {
	case s.prep.jobs <- job:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
