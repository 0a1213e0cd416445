package chaos

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/internal/testenv"
)

// TestSIGKILLS3StorePebble kills the keyedcount job, its keyed state in
// Pebble, with SIGKILL at random moments (during snapshots, uploads,
// restores, garbage collection...) and restarts it from its checkpoints in
// MinIO, with local recovery from the state directory its previous
// incarnation left, until it finishes with exact output.
func TestSIGKILLS3StorePebble(t *testing.T) {
	endpoint, access, secret := testenv.S3(t)
	bucket := testenv.NewBucket(t)
	storeURL := fmt.Sprintf("s3://%s/jobs?endpoint=%s&secure=false", bucket, endpoint)
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	dir := t.TempDir()
	runKillLoop(t, storeURL, filepath.Join(dir, "out"), env, "-state", "pebble", "-state-dir", filepath.Join(dir, "state"))
	t.Setenv("AWS_ACCESS_KEY_ID", access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	restoreRetained(t, storeURL, killRecords, killKeys)
}

// restoreRetained restores the keyed state of every retained checkpoint of
// the job with the Pebble backend, in a fresh directory (no local copies):
// garbage collection, killed at random moments too, must have left every
// object they reference, intact. Each key's count must be a count the job
// can have reached.
func restoreRetained(t *testing.T, storeURL string, records uint64, keys int) {
	ctx := context.Background()
	store, err := checkpoint.Open(ctx, storeURL)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := checkpoint.ListCheckpoints(ctx, store, "keyedcount")
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) == 0 {
		t.Fatal("no retained checkpoint")
	}
	for _, id := range ids {
		m, err := checkpoint.ReadManifest(ctx, store, checkpoint.ManifestName("keyedcount", id))
		if err != nil {
			t.Fatal(err)
		}
		op := m.Operator("count")
		if op == nil {
			t.Fatalf("checkpoint %d has no state of operator count", id)
		}
		var hs []checkpoint.Handle
		for _, st := range op.Subtasks {
			hs = append(hs, st.Keyed...)
		}
		info := state.SubtaskInfo{Job: "keyedcount", Operator: "count", Parallelism: 1, MaxParallelism: m.MaxParallelism,
			KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: m.MaxParallelism}}
		b, err := pebblestate.New(pebblestate.Options{Dir: t.TempDir()}).New(ctx, info, hs, verifyingDownloader{store})
		if err != nil {
			t.Fatalf("restore retained checkpoint %d: %v", id, err)
		}
		n, err := state.NewValue(b, "n", state.Int64)
		if err != nil {
			t.Fatal(err)
		}
		var total int64
		for k := 0; k < keys; k++ {
			key := state.Uint64.Append(nil, uint64(k))
			b.SetCurrentKey(engine.KeyGroup(key, m.MaxParallelism), key)
			c, _, err := n.Get()
			if err != nil {
				t.Fatalf("checkpoint %d, key %d: %v", id, k, err)
			}
			if c < 0 || uint64(c) > records/uint64(keys) {
				t.Fatalf("checkpoint %d, key %d: count %d out of range", id, k, c)
			}
			total += c
		}
		b.Close()
		t.Logf("retained checkpoint %d restored: %d records counted", id, total)
	}
}

// verifyingDownloader checks size and CRC32C as the engine's does.
type verifyingDownloader struct{ s checkpoint.Store }

func (d verifyingDownloader) Open(ctx context.Context, h checkpoint.Handle) (io.ReadCloser, error) {
	data, err := checkpoint.GetBytes(ctx, d.s, h.Name)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != h.Size || crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli)) != h.CRC32C {
		return nil, fmt.Errorf("state object %s: size or checksum differs from the manifest", h.Name)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}
