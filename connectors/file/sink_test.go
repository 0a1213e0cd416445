package file

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

func newTestWriter(t *testing.T, dir string, subtask, parallelism int, attempt string) *writer[int] {
	t.Helper()
	staging := filepath.Join(dir, ".staging")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	return &writer[int]{cfg: SinkConfig[int]{Dir: dir, Encode: func(dst []byte, v int) []byte { return strconv.AppendInt(dst, int64(v), 10) }},
		staging: staging, op: "out", subtask: subtask, parallelism: parallelism, attempt: attempt}
}

// TestTwoPhaseCommit walks a transaction through write, pre-commit, crash,
// recovery and re-commit.
func TestTwoPhaseCommit(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := newTestWriter(t, dir, 0, 1, "a1")
	must(t, w.Write(ctx, []int{1, 2}))
	c1, err := w.PreCommit(ctx, 1)
	must(t, err)
	must(t, w.Write(ctx, []int{3}))
	c2, err := w.PreCommit(ctx, 2)
	must(t, err)
	must(t, w.Write(ctx, []int{4})) // never pre-committed: must never be visible
	if lines, _ := ReadCommitted(dir, "out"); len(lines) != 0 {
		t.Fatalf("visible before commit: %v", lines)
	}
	must(t, w.Commit(ctx, []checkpoint.Committable{{CheckpointID: 1, Data: c1}}))
	w.Close() // crash: checkpoint 2 completed but its commit never ran

	// Recovery by a new attempt: commits checkpoint 2 (and re-commits 1,
	// which is already done), aborts the orphan holding record 4.
	r := newTestWriter(t, dir, 0, 1, "a2")
	cs := []checkpoint.Committable{{CheckpointID: 1, Data: c1}, {CheckpointID: 2, Data: c2}}
	must(t, r.Recover(ctx, cs))
	must(t, r.Recover(ctx, cs)) // idempotent
	lines, err := ReadCommitted(dir, "out")
	must(t, err)
	if got := strings.Join(sorted(lines), ","); got != "1,2,3" {
		t.Fatalf("committed %s, want 1,2,3", got)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, ".staging")); len(left) != 0 {
		t.Fatalf("orphaned staging files left: %v", left)
	}
}

func TestCommitOfLostFileFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	w := newTestWriter(t, dir, 0, 1, "a1")
	must(t, w.Write(ctx, []int{1}))
	c, err := w.PreCommit(ctx, 1)
	must(t, err)
	staged, _ := filepath.Glob(filepath.Join(dir, ".staging", "*"))
	must(t, os.Remove(staged[0]))
	err = w.Commit(ctx, []checkpoint.Committable{{CheckpointID: 1, Data: c}})
	if err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("commit of a vanished transaction: %v, want a loud error", err)
	}
}

// TestRecoverAbortsOrphansOfOtherParallelism: after rescaling 4 -> 2, subtask
// 1 owns the orphans of old subtasks 1 and 3, and leaves 0 and 2 alone.
func TestRecoverAbortsOrphansOfOtherParallelism(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for j := 0; j < 4; j++ {
		w := newTestWriter(t, dir, j, 4, "old")
		must(t, w.Write(ctx, []int{j}))
		w.Close()
	}
	r := newTestWriter(t, dir, 1, 2, "new")
	must(t, r.Recover(ctx, nil))
	left, _ := filepath.Glob(filepath.Join(dir, ".staging", "*"))
	var names []string
	for _, l := range left {
		names = append(names, filepath.Base(l))
	}
	if got := strings.Join(sorted(names), ","); got != "out-0-old-0.inprogress,out-2-old-0.inprogress" {
		t.Fatalf("left %s", got)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
