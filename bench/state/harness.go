package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var ctxBG = context.Background()

var epoch = time.Now()

func nowSec() float64 { return time.Since(epoch).Seconds() }

type atomicInt = atomic.Int64

// uploader and downloader do what the engine's do (names, checksums), so
// that backends can be driven directly, without a job around them.
type uploader struct {
	store checkpoint.Store
	id    uint64
	bytes *atomic.Int64
}

func (u *uploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (checkpoint.Handle, error) {
	full := checkpoint.ObjectName("bench", checkpoint.KindCheckpoint, u.id, "count/0-bench-"+name)
	data, err := io.ReadAll(r)
	if err != nil {
		return checkpoint.Handle{}, err
	}
	if err := u.store.Put(ctx, full, bytes.NewReader(data), int64(len(data))); err != nil {
		return checkpoint.Handle{}, err
	}
	u.bytes.Add(int64(len(data)))
	return checkpoint.Handle{Name: full, Size: int64(len(data)), CRC32C: crc32.Checksum(data, castagnoli)}, nil
}

type downloader struct{ store checkpoint.Store }

func (d downloader) Open(ctx context.Context, h checkpoint.Handle) (io.ReadCloser, error) {
	data, err := checkpoint.GetBytes(ctx, d.store, h.Name)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != h.Size || crc32.Checksum(data, castagnoli) != h.CRC32C {
		return nil, fmt.Errorf("%s: size or checksum mismatch", h.Name)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

const maxPar = 128

func subtaskInfo() state.SubtaskInfo {
	return state.SubtaskInfo{Job: "bench", Operator: "count", Subtask: 0, Parallelism: 1, MaxParallelism: maxPar,
		KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: maxPar}}
}

// counter is a keyed counter on a backend, as operators.Aggregate does it.
type counter struct {
	b   state.Backend
	v   *state.Value[int64]
	key []byte
}

func newCounter(b state.Backend) (*counter, error) {
	v, err := state.NewValue(b, "n", state.Int64)
	if err != nil {
		return nil, err
	}
	return &counter{b: b, v: v}, nil
}

func (c *counter) add(k uint64) error {
	c.key = binary.BigEndian.AppendUint64(c.key[:0], k)
	c.b.SetCurrentKey(engine.KeyGroup(c.key, maxPar), c.key)
	n, _, err := c.v.Get()
	if err != nil {
		return err
	}
	return c.v.Set(n + 1)
}

// snapshotTo takes and uploads checkpoint id, returning the handles, the
// bytes uploaded and the duration of the synchronous and asynchronous parts.
func snapshotTo(b state.Backend, store checkpoint.Store, id uint64) ([]checkpoint.Handle, int64, float64, float64, error) {
	var n atomic.Int64
	t0 := nowSec()
	p, err := b.Snapshot(id)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	t1 := nowSec()
	hs, err := p.Upload(context.Background(), &uploader{store: store, id: id, bytes: &n})
	if err != nil {
		return nil, 0, 0, 0, err
	}
	return hs, n.Load(), t1 - t0, nowSec() - t1, nil
}
