package pebblestate

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// counterLoad writes count[key] += 1 for n random keys of a universe of
// keys, through the backend as a keyed counter does.
func counterLoad(t testing.TB, bs []state.Backend, ids []states, m *model, rng *rand.Rand, n, keys, maxPar int) {
	t.Helper()
	for i := 0; i < n; i++ {
		key := fmt.Sprint("k", rng.IntN(keys))
		kg := kgOf(key, maxPar)
		sub := kg * len(bs) / maxPar
		b := bs[sub]
		b.SetCurrentKey(kg, []byte(key))
		v := fmt.Sprint(len(m.values[key]) + 1) // any deterministic change
		if err := b.Put(ids[sub].val, nil, []byte(v)); err != nil {
			t.Fatal(err)
		}
		m.values[key] = v
	}
}

func registerAll(t testing.TB, bs []state.Backend) []states {
	ids := make([]states, len(bs))
	for i, b := range bs {
		ids[i] = register(t, b)
	}
	return ids
}

// TestS3SnapshotIncrementalRestore checkpoints to MinIO, checks that later
// checkpoints reuse the objects of earlier ones (and upload little), and
// restores each, with and without local copies.
func TestS3SnapshotIncrementalRestore(t *testing.T) {
	h := s3Harness(t)
	o := Options{Dir: t.TempDir()}
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	ids := registerAll(t, bs)
	m := newModel()
	rng := rand.New(rand.NewPCG(1, 2))
	const keys = 20000
	counterLoad(t, bs, ids, m, rng, 60000, keys, h.maxPar)
	m1 := h.checkpoint(1, bs)
	snap1 := m.clone()
	counterLoad(t, bs, ids, m, rng, keys/100, keys, h.maxPar)
	m2 := h.checkpoint(2, bs)
	snap2 := m.clone()

	if h.uploaded[2]*10 > h.uploaded[1] {
		t.Errorf("checkpoint 2 uploaded %d bytes, checkpoint 1 %d: want at most 10%%", h.uploaded[2], h.uploaded[1])
	}
	reused := 0
	for _, hd := range m2.Handles() {
		if id, _ := checkpoint.ParseDataID(h.job, hd.Name); id == 1 {
			reused++
		}
	}
	if reused == 0 {
		t.Errorf("checkpoint 2 references no object of checkpoint 1: not incremental")
	}
	t.Logf("uploaded: checkpoint 1 %d bytes, checkpoint 2 %d bytes; checkpoint 2 reuses %d objects of 1", h.uploaded[1], h.uploaded[2], reused)
	closeAll(t, bs)

	for _, tc := range []struct {
		name  string
		m     *checkpoint.Manifest
		want  *model
		local bool
	}{
		{"latest-local", m2, snap2, true},
		{"latest-download", m2, snap2, false},
		{"older-download", m1, snap1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := o
			o.DisableLocalRecovery = !tc.local
			bs, err := h.restore(tc.m, 1, o)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := StatsOf(bs[0])
			t.Logf("restore: %v, downloaded %d bytes, local %d bytes, replayed %d bytes", st.RestoreTime, st.Downloaded, st.LocalBytes, st.Replayed)
			if tc.local && st.Downloaded != 0 {
				t.Errorf("local recovery downloaded %d bytes, want 0", st.Downloaded)
			}
			if !tc.local && st.LocalBytes != 0 {
				t.Errorf("local recovery disabled, yet %d local bytes used", st.LocalBytes)
			}
			verify(t, bs, registerAll(t, bs), tc.want, keys, h.maxPar, tc.name)
			closeAll(t, bs)
		})
	}
}

// TestS3LocalCopyCorrupt: a local copy that no longer matches its handle is
// not trusted: it is downloaded again.
func TestS3LocalCopyCorrupt(t *testing.T) {
	h := s3Harness(t)
	o := Options{Dir: t.TempDir()}
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	ids := registerAll(t, bs)
	m := newModel()
	counterLoad(t, bs, ids, m, rand.New(rand.NewPCG(3, 4)), 5000, 2000, h.maxPar)
	m1 := h.checkpoint(1, bs)
	closeAll(t, bs)
	for _, hd := range m1.Handles() {
		if strings.HasSuffix(hd.Name, ".sst") {
			p := newLayout(bs[0].(*backend).dir.root).objPath(hd.Name)
			if err := writeFileAtomic(p, []byte("garbage")); err != nil {
				t.Fatal(err)
			}
		}
	}
	bs, err = h.restore(m1, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := StatsOf(bs[0])
	if st.Downloaded == 0 {
		t.Fatal("a corrupt local copy was used instead of being downloaded")
	}
	verify(t, bs, registerAll(t, bs), m, 2000, h.maxPar, "after corrupt local copy")
	closeAll(t, bs)
}

// TestS3Rescale checkpoints at parallelism p and restores at q.
func TestS3Rescale(t *testing.T) {
	for _, pq := range [][2]int{{1, 4}, {4, 1}, {2, 3}, {3, 2}} {
		t.Run(fmt.Sprintf("%d-to-%d", pq[0], pq[1]), func(t *testing.T) {
			h := s3Harness(t)
			o := Options{Dir: t.TempDir(), DisableLocalRecovery: true}
			bs, err := h.restore(nil, pq[0], o)
			if err != nil {
				t.Fatal(err)
			}
			m := newModel()
			const keys = 3000
			counterLoad(t, bs, registerAll(t, bs), m, rand.New(rand.NewPCG(5, 6)), 10000, keys, h.maxPar)
			h.checkpoint(1, bs)
			// Changes after the base, so that the restore replays a
			// changelog too.
			counterLoad(t, bs, registerAll(t, bs), m, rand.New(rand.NewPCG(7, 8)), 500, keys, h.maxPar)
			m2 := h.checkpoint(2, bs)
			closeAll(t, bs)

			bs, err = h.restore(m2, pq[1], o)
			if err != nil {
				t.Fatal(err)
			}
			ids := registerAll(t, bs)
			verify(t, bs, ids, m, keys, h.maxPar, "after rescale")
			// Each subtask holds only its own key groups.
			for i, b := range bs {
				kgs := b.(*backend).info.KeyGroups
				it, err := b.(*backend).db.NewIter(nil)
				if err != nil {
					t.Fatal(err)
				}
				for ok := it.First(); ok; ok = it.Next() {
					if kg, _ := keyGroupOf(it.Key()); !kgs.Contains(kg) && kg != 0xffff { // 0xffff: the marker key
						t.Fatalf("subtask %d (key groups %v) holds key group %d", i, kgs, kg)
					}
				}
				it.Close()
			}
			// And it checkpoints and restores again at the new
			// parallelism.
			counterLoad(t, bs, ids, m, rand.New(rand.NewPCG(9, 10)), 500, keys, h.maxPar)
			m3 := h.checkpoint(3, bs)
			closeAll(t, bs)
			bs, err = h.restore(m3, pq[1], o)
			if err != nil {
				t.Fatal(err)
			}
			verify(t, bs, registerAll(t, bs), m, keys, h.maxPar, "after rescale and checkpoint")
			closeAll(t, bs)
		})
	}
}

// TestS3CorruptOrMissingObject: restore names the checkpoint and the file.
func TestS3CorruptOrMissingObject(t *testing.T) {
	h := s3Harness(t)
	o := Options{Dir: t.TempDir(), DisableLocalRecovery: true}
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	counterLoad(t, bs, registerAll(t, bs), newModel(), rand.New(rand.NewPCG(1, 1)), 3000, 1000, h.maxPar)
	m1 := h.checkpoint(7, bs)
	closeAll(t, bs)
	var sst checkpoint.Handle
	for _, hd := range m1.Handles() {
		if strings.HasSuffix(hd.Name, ".sst") {
			sst = hd
		}
	}
	ctx := context.Background()
	if err := checkpoint.PutBytes(ctx, h.store, sst.Name, []byte("not an sst")); err != nil {
		t.Fatal(err)
	}
	_, err = h.restore(m1, 1, o)
	if err == nil || !strings.Contains(err.Error(), "checkpoint 7") || !strings.Contains(err.Error(), sst.Name) {
		t.Fatalf("restore from a corrupt SST: err = %v, want one naming checkpoint 7 and %s", err, sst.Name)
	}
	if err := h.store.Delete(ctx, sst.Name); err != nil {
		t.Fatal(err)
	}
	_, err = h.restore(m1, 1, o)
	if err == nil || !strings.Contains(err.Error(), "checkpoint 7") || !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("restore with a missing SST: err = %v, want ErrNotFound naming checkpoint 7", err)
	}
}

// keyGroupOf returns the key group of a stored key.
func keyGroupOf(k []byte) (int, bool) {
	if len(k) < 2 {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(k)), true
}
