package chaos

import (
	"context"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// checkStoreIsClean asserts what retention and GC promise after a job ends:
// exactly `retained` checkpoints remain, every object they reference is
// intact, and no data object is left that none of them references.
func checkStoreIsClean(t *testing.T, s checkpoint.Store, job string, retained int) {
	t.Helper()
	ctx := context.Background()
	ids, err := checkpoint.ListCheckpoints(ctx, s, job)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != retained {
		t.Fatalf("%d checkpoints left (%v), want %d retained", len(ids), ids, retained)
	}
	referenced := map[string]bool{}
	for _, id := range ids {
		m, err := checkpoint.ReadManifest(ctx, s, checkpoint.ManifestName(job, id))
		if err != nil {
			t.Fatal(err)
		}
		if err := checkpoint.VerifyHandles(ctx, s, m); err != nil {
			t.Fatalf("retained checkpoint %d is damaged: %v", id, err)
		}
		for _, h := range m.Handles() {
			referenced[h.Name] = true
		}
	}
	objects, err := s.List(ctx, job+"/data/")
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objects {
		if !referenced[o] {
			t.Errorf("garbage left in the store: %s", o)
		}
	}
}
