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

// commitLoop commits positions to the group until stop is closed, then
// commits what is still waiting (the final checkpoint's positions of a
// bounded job). A failure is counted and logged, never fatal: the group's
// offsets only inform lag monitoring.
func (r *reader[K, V]) commitLoop(stop <-chan struct{}) {
	defer r.wg.Done()
	for {
		select {
		case offsets := <-r.commits:
			r.commitGroup(offsets)
		case <-stop:
			select {
			case offsets := <-r.commits:
				r.commitGroup(offsets)
			default:
			}
			return
		}
	}
}

func (r *reader[K, V]) commitGroup(offsets map[tp]int64) {
	// Not the subtask's context: the final commit runs while it ends.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := commitGroupOffsets(ctx, r.cl, r.cfg.Group, offsets, r.topicIDs)
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
