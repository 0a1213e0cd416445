package pebblestate

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// TestIngestWhileWriting uploads snapshots on another goroutine, as the
// engine does, while the record path keeps updating the same keys, with
// ingestions asked for by materializations, by the epoch count and by the
// cache budget. An ingestion must write into Pebble the values of its own
// epochs, not the newer ones the record path writes meanwhile (it copies
// them; the race detector sees an entry updated in place under it), and
// every checkpoint must restore to the state at its snapshot.
func TestIngestWhileWriting(t *testing.T) {
	for _, c := range []struct {
		name string
		o    Options
	}{
		{"materialize every snapshot", Options{MaterializeRatio: 1e-9}},
		{"epoch count", Options{MaterializeRatio: 1e9, MaxChangelogSegments: 1000}},
		{"cache budget", Options{WriteCacheSize: 256 << 10, MaterializeRatio: 1e9, MaxChangelogSegments: 1000}},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := memHarness(t)
			o := c.o
			o.Dir = t.TempDir()
			bs, err := h.restore(nil, 1, o)
			if err != nil {
				t.Fatal(err)
			}
			b := bs[0]
			defer closeAll(t, bs)
			id, err := b.Register("count", state.KindValue)
			if err != nil {
				t.Fatal(err)
			}
			type upload struct {
				id uint64
				p  state.PendingSnapshot
			}
			todo := make(chan upload, 2) // up to two snapshots wait: ingestions queue
			type uploaded struct {
				id  uint64
				hs  []checkpoint.Handle
				err error
			}
			done := make(chan uploaded, 64)
			go func() {
				for u := range todo {
					hs, err := u.p.Upload(context.Background(), &uploader{h: h, kind: checkpoint.KindCheckpoint, id: u.id, sub: 0})
					done <- uploaded{u.id, hs, err}
				}
				close(done)
			}()

			rng := rand.New(rand.NewPCG(7, 8))
			const keys = 2000
			m := map[string]string{}
			snaps := map[uint64]map[string]string{}
			const checkpoints = 40
			for ckpt := uint64(1); ckpt <= checkpoints; ckpt++ {
				for range 3000 {
					key := fmt.Sprint("k", rng.IntN(keys))
					b.SetCurrentKey(kgOf(key, h.maxPar), []byte(key))
					if rng.IntN(20) == 0 {
						if err := b.Delete(id, nil); err != nil {
							t.Fatal(err)
						}
						delete(m, key)
						continue
					}
					v, _, err := b.Get(id, nil)
					if err != nil {
						t.Fatal(err)
					}
					n, _ := strconv.Atoi(string(v))
					nv := strconv.Itoa(n + 1)
					if err := b.Put(id, nil, []byte(nv)); err != nil {
						t.Fatal(err)
					}
					m[key] = nv
				}
				p, err := b.Snapshot(ckpt)
				if err != nil {
					t.Fatal(err)
				}
				snaps[ckpt] = maps.Clone(m)
				todo <- upload{ckpt, p}
			}
			close(todo)
			manifests := map[uint64]*checkpoint.Manifest{}
			for u := range done {
				if u.err != nil {
					t.Fatalf("upload %d: %v", u.id, u.err)
				}
				op := checkpoint.OperatorState{Name: h.op, Parallelism: 1, Subtasks: []checkpoint.SubtaskState{{Operator: h.op, KeyGroups: keyGroupRange(h.maxPar, 1, 0), Keyed: u.hs}}}
				manifests[u.id] = &checkpoint.Manifest{Job: h.job, ID: u.id, Kind: checkpoint.KindCheckpoint, MaxParallelism: h.maxPar, Operators: []checkpoint.OperatorState{op}}
			}
			if st := b.(*backend); st.applied.Load() == 0 {
				t.Fatal("nothing was ingested")
			}
			for _, ckpt := range []uint64{1, 2, checkpoints / 2, checkpoints - 1, checkpoints} {
				rs, err := h.restore(manifests[ckpt], 1, Options{Dir: t.TempDir()})
				if err != nil {
					t.Fatalf("restore %d: %v", ckpt, err)
				}
				r := rs[0]
				cid, err := r.Register("count", state.KindValue)
				if err != nil {
					t.Fatal(err)
				}
				for i := range keys {
					key := fmt.Sprint("k", i)
					r.SetCurrentKey(kgOf(key, h.maxPar), []byte(key))
					v, ok, err := r.Get(cid, nil)
					if err != nil {
						t.Fatal(err)
					}
					if want, wok := snaps[ckpt][key]; ok != wok || string(v) != want {
						t.Fatalf("checkpoint %d, key %s: %q %v, want %q %v", ckpt, key, v, ok, want, wok)
					}
				}
				closeAll(t, rs)
			}
		})
	}
}

// TestIngestWithoutChanges: snapshots of an operator that stopped writing
// still ask for ingestions (here at every materialization), and those must
// mark their epochs applied, or the record path would keep every snapshot
// since as waiting, forever.
func TestIngestWithoutChanges(t *testing.T) {
	h := memHarness(t)
	bs, err := h.restore(nil, 1, Options{Dir: t.TempDir(), MaterializeRatio: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, bs)
	b := bs[0].(*backend)
	id, err := b.Register("count", state.KindValue)
	if err != nil {
		t.Fatal(err)
	}
	b.SetCurrentKey(kgOf("k", h.maxPar), []byte("k"))
	if err := b.Put(id, nil, []byte("1")); err != nil {
		t.Fatal(err)
	}
	const checkpoints = 2 * maxUnappliedEpochs
	for ckpt := uint64(1); ckpt <= checkpoints; ckpt++ {
		h.checkpoint(ckpt, bs)
	}
	b.observe()
	for _, p := range b.frozen {
		if p.ingest {
			t.Fatalf("applied through epoch %d: %d snapshots still waiting, among them epoch %d's, which asked for an ingestion", b.applied.Load(), len(b.frozen), p.epoch)
		}
	}
	if len(b.frozen) >= maxUnappliedEpochs {
		t.Fatalf("%d snapshots waiting for an ingestion", len(b.frozen))
	}
}
