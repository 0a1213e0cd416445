// Package file is an exactly-once file sink: each subtask writes records into
// a staging file per checkpoint; pre-commit makes it durable, and commit
// publishes it with an atomic rename. A published file is never rewritten.
package file

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// SinkConfig configures the sink.
type SinkConfig[T any] struct {
	// Dir receives the published files part-<operator>-<checkpoint>-<subtask>-<attempt>;
	// staging files live in Dir/.staging.
	Dir string
	// Encode appends one record (without a newline) to dst.
	Encode func(dst []byte, rec T) []byte
}

// Sink writes s to cfg.Dir, one line per record, exactly once.
func Sink[T any](s engine.Stream[T], name string, cfg SinkConfig[T], opts ...engine.OperatorOption) {
	engine.Sink(s, name, func(ctx *engine.Context) (engine.SinkWriter[T], error) { return NewWriter(ctx, name, cfg) }, opts...)
}

// NewWriter returns the writer of one subtask of the sink named name, for
// use with engine.Sink: it is an engine.TransactionalSink, an
// engine.AsyncPreCommitter and an io.Closer.
func NewWriter[T any](ctx *engine.Context, name string, cfg SinkConfig[T]) (engine.SinkWriter[T], error) {
	if cfg.Dir == "" || cfg.Encode == nil {
		return nil, fmt.Errorf("file sink %q: Dir and Encode are required", name)
	}
	staging := filepath.Join(cfg.Dir, ".staging")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, fmt.Errorf("file sink %q: create %s: %w", name, staging, err)
	}
	return &writer[T]{cfg: cfg, staging: staging, op: ctx.Operator(), subtask: ctx.Subtask(),
		parallelism: ctx.Parallelism(), attempt: ctx.Attempt()}, nil
}

type writer[T any] struct {
	cfg         SinkConfig[T]
	staging     string
	op          string
	subtask     int
	parallelism int
	attempt     string
	seq         int // staging files opened by this attempt

	f   *os.File
	w   *bufio.Writer
	buf []byte
}

// committable names a prepared staging file and its published name, both
// relative to Dir.
type committable struct {
	Staging string `json:"staging"`
	Final   string `json:"final"`
}

func (w *writer[T]) Write(_ context.Context, records []T) error {
	if w.f == nil {
		name := fmt.Sprintf("%s-%d-%s-%d.inprogress", w.op, w.subtask, w.attempt, w.seq)
		w.seq++
		f, err := os.OpenFile(filepath.Join(w.staging, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("open staging file: %w", err)
		}
		w.f, w.w = f, bufio.NewWriterSize(f, 256<<10)
	}
	for i := range records {
		w.buf = w.cfg.Encode(w.buf[:0], records[i])
		w.buf = append(w.buf, '\n')
		if _, err := w.w.Write(w.buf); err != nil {
			return fmt.Errorf("write %s: %w", w.f.Name(), err)
		}
	}
	return nil
}

// PreCommit makes the staging file durable and closes it; the next record
// opens a new one.
func (w *writer[T]) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	return engine.PreCommitNow(ctx, w, id)
}

// StartPreCommit is PreCommit in two parts (engine.AsyncPreCommitter): on
// the barrier the staging file is handed over, and the next record opens a
// new one; finish flushes and fsyncs the handed-over file meanwhile, so
// that the record path never waits for the disk.
func (w *writer[T]) StartPreCommit(_ context.Context, id uint64) (func(context.Context) ([]byte, error), error) {
	if w.f == nil {
		return nil, nil
	}
	f, bw := w.f, w.w
	w.f, w.w = nil, nil
	c := committable{
		Staging: filepath.Join(".staging", filepath.Base(f.Name())),
		Final:   fmt.Sprintf("part-%s-%020d-%d-%s-%d", w.op, id, w.subtask, w.attempt, w.seq-1),
	}
	staging := w.staging
	return func(context.Context) ([]byte, error) {
		if err := bw.Flush(); err != nil {
			f.Close()
			return nil, fmt.Errorf("flush %s: %w", f.Name(), err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("close %s: %w", f.Name(), err)
		}
		if err := syncDir(staging); err != nil {
			return nil, err
		}
		return json.Marshal(c)
	}, nil
}

// Commit publishes prepared files. A file already published is success; a
// file neither staged nor published is lost output, and that is an error.
func (w *writer[T]) Commit(_ context.Context, cs []checkpoint.Committable) error {
	for _, cm := range cs {
		var c committable
		if err := json.Unmarshal(cm.Data, &c); err != nil {
			return fmt.Errorf("committable of checkpoint %d: %w", cm.CheckpointID, err)
		}
		staging, final := filepath.Join(w.cfg.Dir, c.Staging), filepath.Join(w.cfg.Dir, c.Final)
		err := os.Rename(staging, final)
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Stat(final); serr == nil {
				continue // committed before a crash
			}
			return fmt.Errorf("checkpoint %d: neither staged file %s nor published file %s exists: committed output is lost", cm.CheckpointID, staging, final)
		}
		if err != nil {
			return fmt.Errorf("publish %s: %w", final, err)
		}
	}
	if len(cs) > 0 {
		return syncDir(w.cfg.Dir)
	}
	return nil
}

// Recover commits the restored committables, then deletes the staging files
// this subtask owns (old subtask j with j mod parallelism == subtask) that no
// checkpoint will ever commit.
func (w *writer[T]) Recover(ctx context.Context, cs []checkpoint.Committable) error {
	if err := w.Commit(ctx, cs); err != nil {
		return err
	}
	entries, err := os.ReadDir(w.staging)
	if err != nil {
		return fmt.Errorf("list %s: %w", w.staging, err)
	}
	prefix := w.op + "-"
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || !strings.HasSuffix(name, ".inprogress") {
			continue
		}
		rest := strings.SplitN(strings.TrimPrefix(name, prefix), "-", 2)
		j, err := strconv.Atoi(rest[0])
		if err != nil || len(rest) != 2 || j%w.parallelism != w.subtask || strings.HasPrefix(rest[1], w.attempt+"-") {
			continue
		}
		if err := os.Remove(filepath.Join(w.staging, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("abort orphaned staging file %s: %w", name, err)
		}
	}
	return nil
}

// Close abandons the open staging file; the next attempt's Recover deletes it.
func (w *writer[T]) Close() error {
	if w.f != nil {
		return w.f.Close()
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	return nil
}

// ReadCommitted returns every line of every published file of operator op in
// dir: what a downstream reader sees.
func ReadCommitted(dir, op string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var lines []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "part-"+op+"-") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		for l := range strings.SplitSeq(strings.TrimSuffix(string(data), "\n"), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
	}
	return lines, nil
}
