package pebblestate

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// TestSavepointSelfContained: a savepoint references no checkpoint object
// (retention may delete those), and checkpoints after restoring from a
// savepoint reference no savepoint object (the user may delete it).
func TestSavepointSelfContained(t *testing.T) {
	h := memHarness(t)
	o := Options{Dir: t.TempDir()}
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	ids := registerAll(t, bs)
	m := newModel()
	rng := rand.New(rand.NewPCG(21, 22))
	counterLoad(t, bs, ids, m, rng, 3000, 1000, h.maxPar)
	h.checkpoint(1, bs)
	counterLoad(t, bs, ids, m, rng, 100, 1000, h.maxPar)

	p, err := bs[0].Snapshot(2)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := p.Upload(context.Background(), &uploader{h: h, kind: checkpoint.KindSavepoint, id: 2, sub: 0})
	if err != nil {
		t.Fatal(err)
	}
	for _, hd := range hs {
		if _, ok := checkpoint.ParseDataID(h.job, hd.Name); ok || !strings.Contains(hd.Name, "/savepoints/") {
			t.Fatalf("savepoint references %s, outside its own directory", hd.Name)
		}
	}
	sp := &checkpoint.Manifest{Job: h.job, ID: 2, Kind: checkpoint.KindSavepoint, MaxParallelism: h.maxPar,
		Operators: []checkpoint.OperatorState{{Name: h.op, Parallelism: 1, Subtasks: []checkpoint.SubtaskState{{Operator: h.op, KeyGroups: h.info(0, 1).KeyGroups, Keyed: hs}}}}}
	snap := m.clone()
	// The backend goes on checkpointing incrementally after the savepoint.
	counterLoad(t, bs, ids, m, rng, 100, 1000, h.maxPar)
	h.checkpoint(3, bs)
	closeAll(t, bs)

	bs, err = h.restore(sp, 1, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	verify(t, bs, registerAll(t, bs), snap, 1000, h.maxPar, "restored savepoint")
	m4 := h.checkpoint(4, bs)
	for _, hd := range m4.Handles() {
		if strings.Contains(hd.Name, "/savepoints/") {
			t.Fatalf("checkpoint 4 references savepoint object %s", hd.Name)
		}
	}
	closeAll(t, bs)
}
