package kafka

import (
	"context"
	"time"
)

// CheckpointComplete hands the completed checkpoint's positions to the group
// committer (without blocking the source: the commit is for monitoring).
func (r *reader[K, V]) CheckpointComplete(uint64) error {
	if r.commits == nil || len(r.snapshot) == 0 {
		return nil
	}
	offsets := r.snapshot
	r.snapshot = nil
	select {
	case r.commits <- offsets:
	default:
		// The committer is behind: replace the waiting offsets by the newer.
		select {
		case <-r.commits:
		default:
		}
		r.commits <- offsets
	}
	return nil
}

// CheckpointAborted drops the aborted checkpoint's positions.
func (r *reader[K, V]) CheckpointAborted(uint64) { r.snapshot = nil }

// commitLoop commits positions to the group. A failure is counted and
// logged, never fatal: the group's offsets only inform lag monitoring.
func (r *reader[K, V]) commitLoop(ctx context.Context) {
	defer r.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case offsets := <-r.commits:
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := commitGroupOffsets(cctx, r.cl, r.cfg.Group, offsets)
			cancel()
			c := r.cfg.Counters
			if err != nil {
				r.log.Warn("kafka source: commit offsets to group failed (monitoring only)", "group", r.cfg.Group, "err", err)
				if c != nil {
					c.CommitErrors.Add(1)
				}
			} else if c != nil {
				c.GroupCommits.Add(1)
			}
		}
	}
}
