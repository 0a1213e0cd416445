package engine_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/engine"
)

// gatedSink is an in-memory AsyncPreCommitter whose finish does not return
// until the sink has received records written after its barrier: if the
// engine waited for the pre-commit on the record path, no such record
// would ever come.
type gatedSink struct {
	mu        sync.Mutex
	open      []uint64            // records of the open transaction
	prepared  map[uint64][]uint64 // by checkpoint id
	committed []uint64
	after     chan struct{} // closed by the first Write after a barrier
	barriers  int
	failAt    int // the finish of this barrier (1-based) fails
}

func (s *gatedSink) Write(_ context.Context, recs []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.open = append(s.open, recs...)
	if s.barriers > 0 && s.after != nil {
		close(s.after)
		s.after = nil
	}
	return nil
}

func (s *gatedSink) StartPreCommit(_ context.Context, id uint64) (func(context.Context) ([]byte, error), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.barriers++
	if len(s.open) == 0 {
		return nil, nil
	}
	txn, n, after := s.open, s.barriers, s.after
	s.open = nil
	return func(ctx context.Context) ([]byte, error) {
		if after != nil {
			select {
			case <-after:
			case <-time.After(10 * time.Second):
				return nil, errors.New("no record arrived while the pre-commit was unfinished: the record path waited for it")
			}
		}
		if n == s.failAt {
			return nil, errors.New("injected finish failure")
		}
		s.mu.Lock()
		s.prepared[id] = txn
		s.mu.Unlock()
		return binary.AppendUvarint(nil, id), nil
	}, nil
}

func (s *gatedSink) PreCommit(context.Context, uint64) ([]byte, error) {
	return nil, errors.New("PreCommit called on an AsyncPreCommitter")
}

func (s *gatedSink) Commit(_ context.Context, cs []checkpoint.Committable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		id, _ := binary.Uvarint(c.Data)
		txn, ok := s.prepared[id]
		if !ok {
			return fmt.Errorf("commit of checkpoint %d, which was never prepared", id)
		}
		delete(s.prepared, id)
		s.committed = append(s.committed, txn...)
	}
	return nil
}

func (s *gatedSink) Recover(context.Context, []checkpoint.Committable) error { return nil }

func runGated(t *testing.T, s *gatedSink, records uint64) error {
	t.Helper()
	store, err := fsstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	j := engine.NewJob("gated")
	src := datagen.Source(j, "src", datagen.Config[uint64]{
		Generate: func(seq uint64) uint64 { return seq }, Count: records, Splits: 1, RatePerSecond: float64(records) * 2,
	})
	engine.Sink(src, "out", func(*engine.Context) (engine.SinkWriter[uint64], error) { return s, nil })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return engine.Run(ctx, j, engine.Config{Store: store, CheckpointInterval: 20 * time.Millisecond, Restart: engine.NoRestart()})
}

// TestPreCommitOffTheRecordPath: the sink keeps receiving records while a
// pre-commit is unfinished, every record is committed exactly once, in
// order, and a finish that fails fails the job.
func TestPreCommitOffTheRecordPath(t *testing.T) {
	const records = 20000
	s := &gatedSink{prepared: map[uint64][]uint64{}, after: make(chan struct{})}
	if err := runGated(t, s, records); err != nil {
		t.Fatal(err)
	}
	if s.after != nil {
		t.Fatal("no barrier reached the sink before the input ended")
	}
	if len(s.committed) != records {
		t.Fatalf("%d records committed, want %d", len(s.committed), records)
	}
	for i, v := range s.committed {
		if v != uint64(i) {
			t.Fatalf("committed record %d is %d", i, v)
		}
	}
	t.Logf("%d barriers", s.barriers)

	s = &gatedSink{prepared: map[uint64][]uint64{}, failAt: 2}
	err := runGated(t, s, records)
	if err == nil || !strings.Contains(err.Error(), "injected finish failure") || !strings.Contains(err.Error(), "pre-commit") {
		t.Fatalf("run with a failing finish: %v", err)
	}
}
