package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// coordinate runs the pure coordinator: it feeds it ticks and messages and
// executes the effects it returns.
func (a *attempt) coordinate(ctx context.Context, tasksDone <-chan struct{}) error {
	c, err := checkpoint.NewCoordinator(a.coordCfg)
	if err != nil {
		return permanent(fmt.Errorf("checkpoint coordinator: %w", err))
	}
	ticker := time.NewTicker(a.cfg.Tick)
	defer ticker.Stop()
	for {
		var effects []checkpoint.Effect
		select {
		case <-ticker.C:
			effects = c.Step(checkpoint.Tick{})
		case m := <-a.inbox:
			effects = c.Step(m)
		case <-tasksDone:
			if a.isFinished() {
				return nil
			}
			return errors.New("every subtask ended before the final checkpoint completed")
		case <-ctx.Done():
			return nil
		}
		if err := a.execute(ctx, c, effects); err != nil {
			return err
		}
	}
}

func (a *attempt) execute(ctx context.Context, c *checkpoint.Coordinator, effects []checkpoint.Effect) error {
	for _, e := range effects {
		switch e := e.(type) {
		case checkpoint.InjectBarrier:
			a.mu.Lock()
			a.lastTriggered = e.Barrier.ID
			tctx, cancel := context.WithCancelCause(ctx)
			a.triggered[e.Barrier.ID] = triggered{at: time.Now(), barrier: e.Barrier, ctx: tctx, cancel: cancel}
			a.mu.Unlock()
			if a.cfg.Control != nil {
				a.cfg.Control.injected(e.Barrier)
			}
			for _, v := range a.job.vertices {
				if v.kind == kindSource {
					for _, mb := range a.boxes[v] {
						mb.push(control{kind: ctlTrigger, barrier: e.Barrier})
					}
				}
			}
		case checkpoint.WriteManifest:
			e.Manifest.CreatedUnixMilli = time.Now().UnixMilli()
			name, err := checkpoint.PutManifest(ctx, a.cfg.Store, e.Manifest)
			if err != nil && ctx.Err() != nil {
				return nil // the attempt is ending; the outcome is unknown and irrelevant
			}
			if err != nil && !errors.Is(err, checkpoint.ErrExists) {
				// A failed write may still have landed (a lost response).
				// A durable manifest means a complete checkpoint, so the
				// outcome must be known before the checkpoint is aborted.
				if err = a.resolveManifestWrite(ctx, e.Manifest, name, err); err != nil && !errors.Is(err, errNotWritten) {
					return err
				}
			}
			if err == nil {
				a.completed(e.Manifest, name)
			}
			if err := a.execute(ctx, c, c.Step(checkpoint.ManifestWritten{ID: e.Manifest.ID, Err: err})); err != nil {
				return err
			}
		case checkpoint.NotifyComplete:
			// The checkpoint is durable: a failure from here on must be
			// repaired by recovery committing its transactions.
			if err := a.fault(FaultBeforeNotify, checkpoint.TaskID{Operator: "coordinator"}, e.ID); err != nil {
				return err
			}
			a.broadcast(control{kind: ctlComplete, id: e.ID, final: e.Final})
		case checkpoint.NotifyAborted:
			a.cfg.Logger.Warn("checkpoint aborted", "job", a.job.name, "checkpoint", e.ID, "reason", e.Reason)
			if a.cfg.Listener != nil {
				a.cfg.Listener.CheckpointAborted(e.ID, e.Reason)
			}
			tr := a.endTriggered(e.ID)
			if a.cfg.Control != nil {
				a.cfg.Control.record(CheckpointInfo{ID: e.ID, Kind: tr.barrier.Kind.String(), At: time.Now(),
					DurationMillis: time.Since(tr.at).Milliseconds(), Aborted: e.Reason})
			}
			a.broadcast(control{kind: ctlAborted, id: e.ID})
		case checkpoint.DeleteCheckpoints:
			wakeUp(a.gc)
		case checkpoint.FailJob:
			if errors.Is(e.Err, checkpoint.ErrExists) {
				return permanent(e.Err)
			}
			return e.Err
		case checkpoint.JobFinished:
			a.mu.Lock()
			a.finished = true
			a.mu.Unlock()
		default:
			return fmt.Errorf("coordinator: unexpected effect %T", e)
		}
	}
	return nil
}

func (a *attempt) completed(m *checkpoint.Manifest, name string) {
	tr := a.endTriggered(m.ID)
	d := time.Since(tr.at)
	if a.cfg.Listener != nil {
		a.cfg.Listener.CheckpointCompleted(m, d)
	}
	if a.cfg.Control != nil {
		var bytes int64
		for _, h := range m.Handles() {
			bytes += h.Size
		}
		a.cfg.Control.record(CheckpointInfo{ID: m.ID, Kind: m.Kind.String(), Manifest: name, At: time.Now(),
			DurationMillis: d.Milliseconds(), Bytes: bytes})
	}
}

func (a *attempt) broadcast(c control) {
	for _, boxes := range a.boxes {
		for _, mb := range boxes {
			mb.push(c)
		}
	}
}

func (a *attempt) isFinished() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.finished
}

// lastTriggeredID reports the highest checkpoint id triggered.
func (a *attempt) lastTriggeredID() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastTriggered
}

// uploader names and writes one subtask's snapshot objects, recording size
// and checksum in the handles.
type uploader struct {
	a   *attempt
	env *taskEnv
	b   checkpoint.Barrier
}

func (u *uploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (checkpoint.Handle, error) {
	rest := fmt.Sprintf("%s/%d-%s-%s", u.env.v.name, u.env.index, u.a.token, name)
	full := checkpoint.ObjectName(u.a.job.name, u.b.Kind, u.b.ID, rest)
	h := crc32.New(castagnoli)
	cr := &countingReader{r: io.TeeReader(r, h)}
	if err := u.a.cfg.Store.Put(ctx, full, cr, size); err != nil {
		return checkpoint.Handle{}, fmt.Errorf("upload %s: %w", full, err)
	}
	return checkpoint.Handle{Name: full, Size: cr.n, CRC32C: h.Sum32()}, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// errNotWritten marks a manifest write known to have failed: the checkpoint
// can be aborted safely.
var errNotWritten = errors.New("manifest not written")

// resolveManifestWrite decides the outcome of a manifest write that returned
// writeErr by reading the object back. It returns nil if the manifest we
// wrote is durable, an error wrapping errNotWritten if none is, an error
// wrapping checkpoint.ErrExists if another incarnation's is, and otherwise an
// error that fails the attempt: the next attempt re-resolves the latest
// checkpoint from the store.
func (a *attempt) resolveManifestWrite(ctx context.Context, m *checkpoint.Manifest, name string, writeErr error) error {
	ours, err := checkpoint.EncodeManifest(m)
	if err != nil || name == "" {
		return fmt.Errorf("%w: %w", errNotWritten, writeErr)
	}
	got, err := checkpoint.GetBytes(ctx, a.cfg.Store, name)
	switch {
	case errors.Is(err, checkpoint.ErrNotFound):
		return fmt.Errorf("%w: %w", errNotWritten, writeErr)
	case err != nil:
		return fmt.Errorf("%s %d: the manifest write failed (%v) and reading it back failed too (%w): its outcome is unknown",
			m.Kind, m.ID, writeErr, err)
	case bytes.Equal(got, ours):
		a.cfg.Logger.Warn("manifest write reported an error but landed", "job", a.job.name, "checkpoint", m.ID, "err", writeErr)
		return nil
	}
	return fmt.Errorf("%s %d: %w: %s holds another incarnation's manifest", m.Kind, m.ID, checkpoint.ErrExists, name)
}
