package pebblestate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/memstore"
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// stores
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/internal/testenv"
)

// The harness plays the engine's part around backends: it names objects as
// the engine's uploader does (<job>/data/<id>/<op>/<subtask>-<token>-<name>),
// verifies downloads against handles, and writes manifests, so that the
// store's garbage collection (checkpoint.Retain) sees what it would see in a
// running job.
type harness struct {
	t      testing.TB
	store  checkpoint.Store
	job    string
	op     string
	maxPar int
	token  string
	// uploaded counts bytes written by uploads, by checkpoint id.
	mu       sync.Mutex
	uploaded map[uint64]int64
}

func newHarness(t testing.TB, store checkpoint.Store) *harness {
	var tok [4]byte
	rand.Read(tok[:])
	return &harness{t: t, store: store, job: "job", op: "count", maxPar: 128, token: hex.EncodeToString(tok[:]), uploaded: map[uint64]int64{}}
}

func memHarness(t testing.TB) *harness { return newHarness(t, memstore.New()) }

func s3Harness(t testing.TB) *harness {
	bucket := testenv.NewBucket(t)
	s, err := checkpoint.Open(context.Background(), testenv.S3URL(t, bucket, "jobs"))
	if err != nil {
		t.Fatal(err)
	}
	return newHarness(t, s)
}

func (h *harness) info(sub, par int) state.SubtaskInfo {
	return state.SubtaskInfo{
		Job: h.job, Operator: h.op, Subtask: sub, Parallelism: par, MaxParallelism: h.maxPar,
		KeyGroups: keyGroupRange(h.maxPar, par, sub),
	}
}

// keyGroupRange is the engine's KeyGroupRange (engine imports would cycle).
func keyGroupRange(maxPar, p, i int) checkpoint.KeyGroupRange {
	return checkpoint.KeyGroupRange{Start: (i*maxPar + p - 1) / p, End: ((i+1)*maxPar + p - 1) / p}
}

type uploader struct {
	h    *harness
	kind checkpoint.Kind
	id   uint64
	sub  int
	// fail, when set, is called before each object; an error fails it.
	fail func(name string) error
}

func (u *uploader) Upload(ctx context.Context, name string, r io.Reader, size int64) (checkpoint.Handle, error) {
	if u.fail != nil {
		if err := u.fail(name); err != nil {
			return checkpoint.Handle{}, err
		}
	}
	rest := fmt.Sprintf("%s/%d-%s-%s", u.h.op, u.sub, u.h.token, name)
	full := checkpoint.ObjectName(u.h.job, u.kind, u.id, rest)
	c := crc32.New(castagnoli)
	var n countingReader
	n.r = io.TeeReader(r, c)
	if err := u.h.store.Put(ctx, full, &n, size); err != nil {
		return checkpoint.Handle{}, fmt.Errorf("upload %s: %w", full, err)
	}
	u.h.mu.Lock()
	u.h.uploaded[u.id] += n.n.Load()
	u.h.mu.Unlock()
	return checkpoint.Handle{Name: full, Size: n.n.Load(), CRC32C: c.Sum32()}, nil
}

type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type downloader struct {
	h *harness
	n atomic.Int64 // objects opened
}

func (d *downloader) Open(ctx context.Context, h checkpoint.Handle) (io.ReadCloser, error) {
	d.n.Add(1)
	data, err := checkpoint.GetBytes(ctx, d.h.store, h.Name)
	if err != nil {
		return nil, fmt.Errorf("read state object %s: %w", h.Name, err)
	}
	if int64(len(data)) != h.Size {
		return nil, fmt.Errorf("state object %s: %d bytes, the manifest says %d", h.Name, len(data), h.Size)
	}
	if sum := crc32.Checksum(data, castagnoli); sum != h.CRC32C {
		return nil, fmt.Errorf("state object %s: checksum %08x, the manifest says %08x (corrupt)", h.Name, sum, h.CRC32C)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// snapshot takes checkpoint id of every backend (subtask i = bs[i]), uploads
// them and writes the manifest. It returns the manifest.
func (h *harness) checkpoint(id uint64, bs []state.Backend) *checkpoint.Manifest {
	h.t.Helper()
	m, err := h.tryCheckpoint(id, bs, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

func (h *harness) tryCheckpoint(id uint64, bs []state.Backend, fail func(string) error) (*checkpoint.Manifest, error) {
	op := checkpoint.OperatorState{Name: h.op, Parallelism: len(bs)}
	for i, b := range bs {
		p, err := b.Snapshot(id)
		if err != nil {
			return nil, fmt.Errorf("snapshot %d of subtask %d: %w", id, i, err)
		}
		hs, err := p.Upload(context.Background(), &uploader{h: h, kind: checkpoint.KindCheckpoint, id: id, sub: i, fail: fail})
		if err != nil {
			return nil, err
		}
		op.Subtasks = append(op.Subtasks, checkpoint.SubtaskState{Operator: h.op, Subtask: i, KeyGroups: keyGroupRange(h.maxPar, len(bs), i), Keyed: hs})
	}
	m := &checkpoint.Manifest{Job: h.job, ID: id, Kind: checkpoint.KindCheckpoint, MaxParallelism: h.maxPar, Operators: []checkpoint.OperatorState{op}}
	if _, err := checkpoint.PutManifest(context.Background(), h.store, m); err != nil {
		return nil, err
	}
	return m, nil
}

// restore opens parallelism par from m (nil: fresh) with options o (Dir
// set per subtask index from dirs).
func (h *harness) restore(m *checkpoint.Manifest, par int, o Options) ([]state.Backend, error) {
	var bs []state.Backend
	for i := 0; i < par; i++ {
		info := h.info(i, par)
		var hs []checkpoint.Handle
		if m != nil {
			for _, st := range m.Operators[0].Subtasks {
				for _, hd := range st.Keyed {
					if hd.KeyGroups.Intersects(info.KeyGroups) {
						hs = append(hs, hd)
					}
				}
			}
		}
		b, err := New(o).New(context.Background(), info, hs, &downloader{h: h})
		if err != nil {
			for _, b := range bs {
				b.Close()
			}
			return nil, err
		}
		bs = append(bs, b)
	}
	return bs, nil
}

func closeAll(t testing.TB, bs []state.Backend) {
	t.Helper()
	for _, b := range bs {
		if err := b.Close(); err != nil {
			t.Error(err)
		}
	}
}
