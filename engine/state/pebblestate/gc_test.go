package pebblestate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// killingStore fails every operation after `left` deletes: a collector
// killed midway, as far as the store can tell.
type killingStore struct {
	checkpoint.Store
	left int
}

var errKilled = errors.New("killed")

func (s *killingStore) Delete(ctx context.Context, name string) error {
	if s.left <= 0 {
		return errKilled
	}
	s.left--
	return s.Store.Delete(ctx, name)
}

// TestS3GCWithFailuresAndKills runs checkpoints on MinIO, some of whose
// uploads fail midway (declined checkpoints), with garbage collection
// interrupted at random deletes, then restores every retained checkpoint:
// collection never removes an object a retained checkpoint needs, whatever
// the failures, and the incremental reuse across failed checkpoints keeps
// the contract collection relies on.
func TestS3GCWithFailuresAndKills(t *testing.T) {
	h := s3Harness(t)
	ctx := context.Background()
	o := Options{Dir: t.TempDir(), MaxChangelogSegments: 3, MaterializeRatio: 0.05}
	const par, keys, keep = 2, 2000, 2
	bs, err := h.restore(nil, par, o)
	if err != nil {
		t.Fatal(err)
	}
	ids := registerAll(t, bs)
	m := newModel()
	snaps := map[uint64]*model{}
	rng := rand.New(rand.NewPCG(11, 12))
	failed, kills := 0, 0
	for id := uint64(1); id <= 24; id++ {
		counterLoad(t, bs, ids, m, rng, 300+rng.IntN(2000), keys, h.maxPar)
		var fail func(string) error
		if id > 1 && rng.IntN(4) == 0 {
			var n atomic.Int64
			n.Store(int64(rng.IntN(4)))
			fail = func(name string) error {
				if n.Add(-1) < 0 {
					return fmt.Errorf("injected put failure of %s", name)
				}
				return nil
			}
		}
		if _, err := h.tryCheckpoint(id, bs, fail); err != nil {
			if fail == nil {
				t.Fatal(err)
			}
			failed++
			continue
		}
		snaps[id] = m.clone()
		if _, err := checkpoint.Retain(ctx, &killingStore{Store: h.store, left: rng.IntN(6)}, h.job, keep); err != nil {
			if !errors.Is(err, errKilled) {
				t.Fatal(err)
			}
			kills++
		}
	}
	closeAll(t, bs)
	if _, err := checkpoint.Retain(ctx, h.store, h.job, keep); err != nil {
		t.Fatal(err)
	}
	retained, err := checkpoint.ListCheckpoints(ctx, h.store, h.job)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d checkpoints failed, collection killed %d times; retained %v", failed, kills, retained)
	if failed == 0 || kills == 0 {
		t.Fatalf("the test injected %d failures and %d kills: it must inject both", failed, kills)
	}
	for _, id := range retained {
		man, err := checkpoint.ReadManifest(ctx, h.store, checkpoint.ManifestName(h.job, id))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range []int{par, 1} {
			bs, err := h.restore(man, q, Options{Dir: t.TempDir(), DisableLocalRecovery: true})
			if err != nil {
				t.Fatalf("restore retained checkpoint %d at parallelism %d: %v", id, q, err)
			}
			verify(t, bs, registerAll(t, bs), snaps[id], keys, h.maxPar, fmt.Sprintf("checkpoint %d at p=%d", id, q))
			closeAll(t, bs)
		}
	}
}
