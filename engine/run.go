package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// Run executes the job until its input ends and its final checkpoint is
// committed (nil), ctx is cancelled (ctx's error), or it fails beyond what
// the restart strategy allows. After each failure every subtask restarts from
// the latest completed checkpoint.
func Run(ctx context.Context, job *Job, cfg Config) error {
	if err := job.Validate(); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("job", job.name)

	ids, highest, err := listIDs(ctx, job, cfg)
	if err != nil {
		return err
	}
	restore, err := initialRestorePoint(ctx, job, cfg)
	if err != nil {
		return err
	}
	// Checkpoint ids never go backwards, even when restoring an older
	// checkpoint: a new id must not collide with any manifest (checkpoint or
	// savepoint) in the store.
	nextID := highest + 1
	firstID := nextID // ids from here on are this run's
	restarts := newRestarter(cfg.Restart)
	for n := 1; ; n++ {
		if restore != nil {
			log.Info("restoring", "kind", restore.Kind, "checkpoint", restore.ID, "attempt", n)
		}
		att, err := newAttempt(job, cfg, restore, nextID, ids)
		if err != nil {
			return err
		}
		if cfg.Control != nil {
			cfg.Control.attemptStarted(job.name, att, n)
		}
		err = att.run(ctx)
		nextID = max(nextID, att.lastTriggeredID()+1)
		ended := func(err error, state string) error {
			if cfg.Control != nil {
				cfg.Control.attemptEnded(err, state)
			}
			return err
		}
		if err == nil {
			log.Info("job finished", "attempts", n)
			return ended(nil, StateFinished)
		}
		if ctx.Err() != nil {
			return ended(ctx.Err(), StateCancelled)
		}
		if IsPermanent(err) {
			return ended(fmt.Errorf("job %q failed and cannot be restarted: %w", job.name, err), StateFailed)
		}
		delay, ok := restarts.next(time.Now())
		if !ok {
			return ended(fmt.Errorf("job %q failed; restart strategy %s gives up: %w", job.name, cfg.Restart, err), StateFailed)
		}
		ended(err, StateRestarting)
		log.Warn("job failed; restarting", "attempt", n, "delay", delay, "err", err)
		if cfg.Listener != nil {
			cfg.Listener.Restarting(n, err, delay)
		}
		// Restart from the newest checkpoint or savepoint this run created
		// (its sinks may have committed it, and a manifest write that
		// reported an error may have landed all the same); before the
		// first one, from where the run started.
		latest, err := checkpoint.LatestCheckpoint(ctx, cfg.Store, job.name)
		if err != nil {
			return ended(fmt.Errorf("job %q: find the checkpoint to restart from: %w", job.name, err), StateFailed)
		}
		if latest != nil && latest.ID >= firstID {
			restore = latest
		}
		if ids, _, err = listIDs(ctx, job, cfg); err != nil {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// listIDs returns the completed checkpoint ids (for retention) and the
// highest id of any checkpoint or savepoint in the store.
func listIDs(ctx context.Context, job *Job, cfg Config) (checkpoints []uint64, highest uint64, err error) {
	checkpoints, err = checkpoint.ListCheckpoints(ctx, cfg.Store, job.name)
	if err != nil {
		return nil, 0, fmt.Errorf("list checkpoints of job %q in %s: %w", job.name, cfg.Store, err)
	}
	savepoints, err := checkpoint.ListSavepoints(ctx, cfg.Store, job.name)
	if err != nil {
		return nil, 0, fmt.Errorf("list savepoints of job %q in %s: %w", job.name, cfg.Store, err)
	}
	for _, ids := range [][]uint64{checkpoints, savepoints} {
		if len(ids) > 0 {
			highest = max(highest, ids[len(ids)-1])
		}
	}
	return checkpoints, highest, nil
}

func initialRestorePoint(ctx context.Context, job *Job, cfg Config) (*checkpoint.Manifest, error) {
	switch cfg.Restore {
	case "none":
		return nil, nil
	case "", "latest":
		m, err := checkpoint.LatestCheckpoint(ctx, cfg.Store, job.name)
		if err != nil {
			return nil, fmt.Errorf("job %q: find the latest checkpoint: %w", job.name, err)
		}
		return m, nil
	}
	m, err := checkpoint.ReadManifest(ctx, cfg.Store, cfg.Restore)
	if err != nil {
		if errors.Is(err, checkpoint.ErrNotFound) {
			return nil, fmt.Errorf("job %q: restore point %q not found in %s", job.name, cfg.Restore, cfg.Store)
		}
		return nil, fmt.Errorf("job %q: restore point %q: %w", job.name, cfg.Restore, err)
	}
	return m, nil
}
