package engine

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// countingFinishes is an AsyncPreCommitter whose first finish blocks until
// its context ends.
type countingFinishes struct{ calls atomic.Int32 }

func (c *countingFinishes) StartPreCommit(context.Context, uint64) (func(context.Context) ([]byte, error), error) {
	return func(ctx context.Context) ([]byte, error) {
		if c.calls.Add(1) == 1 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return []byte("c"), nil
	}, nil
}

// TestStoppedPreparerReleasesQueuedFinishes: a subtask that stops with
// pre-commits queued behind an unfinished one still runs their finishes
// (with a cancelled context), so that nothing they hold leaks.
func TestStoppedPreparerReleasesQueuedFinishes(t *testing.T) {
	env := &taskEnv{att: &attempt{inbox: make(chan any, 8)}, mb: newMailbox(), id: checkpoint.TaskID{Operator: "out"}}
	sink := &countingFinishes{}
	s := &sinkSide{env: env, prep: startPreparer(context.Background(), env, sink)}
	for id := uint64(1); id <= 3; id++ {
		if err := s.startPreCommit(context.Background(), checkpoint.Barrier{ID: id}, checkpoint.SubtaskState{}); err != nil {
			t.Fatal(err)
		}
	}
	s.prep.stop()
	if n := sink.calls.Load(); n != 3 {
		t.Fatalf("%d finishes ran, want 3", n)
	}
	if len(env.att.inbox) != 0 || env.mb.pending() {
		t.Fatal("a stopped preparer acknowledged a barrier or failed the subtask")
	}
}
