package runner

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

func putManifest(t *testing.T, s checkpoint.Store, kind checkpoint.Kind, id uint64) string {
	t.Helper()
	name, err := checkpoint.PutManifest(context.Background(), s, &checkpoint.Manifest{Job: "wc", ID: id, Kind: kind, CreatedUnixMilli: 1, MaxParallelism: 128})
	if err != nil {
		t.Fatal(err)
	}
	return name
}

// TestRestartPoint: a lineage started from an older savepoint restarts from
// it until a checkpoint above its floor exists, never from a newer
// checkpoint of the abandoned lineage; then from the latest.
func TestRestartPoint(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, filepath.Join(dir, "runner"))
	defer r.Close()
	j := &Job{ID: "j1", Store: "file://" + filepath.Join(dir, "ckpt")}
	s, err := r.storeFor(context.Background(), j)
	if err != nil {
		t.Fatal(err)
	}
	sp := putManifest(t, s, checkpoint.KindSavepoint, 5)
	putManifest(t, s, checkpoint.KindCheckpoint, 7)
	j.Restore, j.RestoreFloor = sp, 7
	ctx := context.Background()
	if p, err := r.restartPoint(ctx, j); err != nil || p != sp {
		t.Fatalf("before a new checkpoint: %q %v, want %s", p, err, sp)
	}
	putManifest(t, s, checkpoint.KindCheckpoint, 8)
	if p, err := r.restartPoint(ctx, j); err != nil || p != "latest" {
		t.Fatalf("after checkpoint 8: %q %v, want latest", p, err)
	}
	pts, err := listPoints(ctx, s, "j1")
	if err != nil || len(pts) != 3 || pts[0].Path != "j1/"+sp || pts[0].Kind != "savepoint" {
		t.Fatalf("listPoints: %+v %v", pts, err)
	}

	// Copying a savepoint into another store, and deleting it.
	to, err := r.storeFor(ctx, &Job{ID: "j2", Store: "file://" + filepath.Join(dir, "ckpt2")})
	if err != nil {
		t.Fatal(err)
	}
	if err := copyPoint(ctx, s, to, sp); err != nil {
		t.Fatal(err)
	}
	if high, err := highestID(ctx, to, "wc"); err != nil || high != 5 {
		t.Fatalf("copied store: highest %d %v", high, err)
	}
	pp, _ := parseManifest(sp)
	if err := deleteSavepoint(ctx, to, pp); err != nil {
		t.Fatal(err)
	}
	if names, _ := to.List(ctx, ""); len(names) != 0 {
		t.Fatalf("left after deleting the savepoint: %v", names)
	}
}
