// Package datagen is a deterministic, checkpointable source for tests,
// examples and benchmarks: record n is Generate(n), and its position in a
// checkpoint is the next sequence number of each split.
package datagen

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// Config describes the generated stream.
type Config[T any] struct {
	// Generate returns record number seq. It must be deterministic: replay
	// after a restore must yield the same records.
	Generate func(seq uint64) T
	// Count is the total number of records; 0 means unbounded.
	Count uint64
	// Splits is the number of independent sequences (default 1). Split s
	// yields seq = s, s+Splits, s+2*Splits... Splits are spread over the
	// source's subtasks (split s to subtask s mod parallelism), so the
	// records of a split keep their order whatever the parallelism.
	Splits int
	// RatePerSecond limits each subtask; 0 means as fast as possible.
	RatePerSecond float64
	// BatchSize is the number of records per read (default 256).
	BatchSize int
	// Pause, if set, holds back record seq (and the rest of its split) while
	// it returns true. Checkpoints go on meanwhile: tests use it to keep a
	// bounded job running until the faults they inject have fired.
	Pause func(seq uint64) bool
}

// Source adds a datagen source named name to the job.
func Source[T any](j *engine.Job, name string, cfg Config[T], opts ...engine.OperatorOption) engine.Stream[T] {
	return engine.FromSource(j, name, &source[T]{cfg: cfg}, opts...)
}

type source[T any] struct{ cfg Config[T] }

func (s *source[T]) NewReader(ctx *engine.SourceContext) (engine.SourceReader[T], error) {
	cfg := s.cfg
	if cfg.Generate == nil {
		return nil, errors.New("datagen: Config.Generate is nil")
	}
	if cfg.Splits == 0 {
		cfg.Splits = 1
	}
	if cfg.Splits < 0 || cfg.RatePerSecond < 0 || cfg.BatchSize < 0 {
		return nil, fmt.Errorf("datagen: splits (%d), rate (%g) and batch size (%d) must not be negative", cfg.Splits, cfg.RatePerSecond, cfg.BatchSize)
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 256
	}
	r := &reader[T]{cfg: cfg, start: time.Now()}
	for sp := ctx.Subtask(); sp < cfg.Splits; sp += ctx.Parallelism() {
		r.splits = append(r.splits, split{id: sp})
	}
	restored := map[int]uint64{}
	for _, p := range ctx.RestoredPositions() {
		id, next, err := decodePosition(p)
		if err != nil {
			return nil, err
		}
		restored[id] = next
	}
	for i := range r.splits {
		r.splits[i].next = restored[r.splits[i].id]
	}
	return r, nil
}

type split struct {
	id   int
	next uint64 // index within the split of the next record
}

type reader[T any] struct {
	cfg     Config[T]
	splits  []split
	cur     int
	start   time.Time
	emitted float64
}

func (r *reader[T]) seq(s split) uint64 { return uint64(s.id) + s.next*uint64(r.cfg.Splits) }

func (r *reader[T]) ReadBatch(ctx context.Context, dst []T) ([]T, error) {
	n := r.cfg.BatchSize
	if r.cfg.RatePerSecond > 0 {
		allowed := r.cfg.RatePerSecond*time.Since(r.start).Seconds() - r.emitted
		if allowed < 1 {
			wait := time.Duration((1 - allowed) / r.cfg.RatePerSecond * float64(time.Second))
			return dst, sleep(ctx, min(wait, 10*time.Millisecond))
		}
		n = min(n, int(allowed))
	}
	// Round-robin over the subtask's splits, one batch at a time.
	paused := false
	for tries := 0; tries < len(r.splits); tries++ {
		s := &r.splits[r.cur]
		r.cur = (r.cur + 1) % len(r.splits)
		for i := 0; i < n; i++ {
			seq := r.seq(*s)
			if r.cfg.Count > 0 && seq >= r.cfg.Count {
				break
			}
			if r.cfg.Pause != nil && r.cfg.Pause(seq) {
				paused = true
				break
			}
			dst = append(dst, r.cfg.Generate(seq))
			s.next++
		}
		if len(dst) > 0 {
			r.emitted += float64(len(dst))
			return dst, nil
		}
	}
	if paused {
		return dst, sleep(ctx, 5*time.Millisecond)
	}
	return dst, io.EOF
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *reader[T]) Positions() ([]checkpoint.SourcePosition, error) {
	pos := make([]checkpoint.SourcePosition, len(r.splits))
	for i, s := range r.splits {
		pos[i] = checkpoint.SourcePosition{Split: "split-" + strconv.Itoa(s.id), Position: binary.AppendUvarint(nil, s.next)}
	}
	return pos, nil
}

func decodePosition(p checkpoint.SourcePosition) (int, uint64, error) {
	id, err := strconv.Atoi(strings.TrimPrefix(p.Split, "split-"))
	if err != nil || !strings.HasPrefix(p.Split, "split-") {
		return 0, 0, fmt.Errorf("datagen: restored position of unknown split %q", p.Split)
	}
	next, n := binary.Uvarint(p.Position)
	if n <= 0 || n != len(p.Position) {
		return 0, 0, fmt.Errorf("datagen: restored position of split %q is malformed", p.Split)
	}
	return id, next, nil
}
