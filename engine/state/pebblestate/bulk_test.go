package pebblestate

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/onceflow/onceflow/engine/state"
)

// bulkKey is key i of the bulk tests: key group i % maxPar, 8-byte key.
func bulkKey(i, maxPar int) (int, []byte) {
	return i % maxPar, binary.BigEndian.AppendUint64(nil, uint64(i))
}

// bulkValue is an incompressible 8-byte value, as a hash or an id would be.
func bulkValue(i, version int) []byte {
	x := uint64(i)*0x9e3779b97f4a7c15 + uint64(version)*0xbf58476d1ce4e5b9
	x ^= x >> 31
	return binary.BigEndian.AppendUint64(nil, x)
}

// bulkLoad writes n keys of value state name straight into b's database as
// ingested SSTs, which is what a long-running job's state looks like after
// compactions, in a fraction of the time writing them one by one takes.
func bulkLoad(t testing.TB, sb state.Backend, name string, n int) {
	t.Helper()
	b := sb.(*backend)
	if _, err := b.Register(name, state.KindValue); err != nil {
		t.Fatal(err)
	}
	tag := stateTag(name)
	maxPar := b.info.MaxParallelism
	dir := t.TempDir()
	var paths []string
	var w *sstable.Writer
	finish := func() {
		if w != nil {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			w = nil
		}
	}
	var k []byte
	inFile := 0
	for kg := b.info.KeyGroups.Start; kg < b.info.KeyGroups.End; kg++ {
		for i := kg; i < n; i += maxPar {
			if w == nil {
				p := filepath.Join(dir, fmt.Sprintf("%d.sst", len(paths)))
				f, err := vfs.Default.Create(p, vfs.WriteCategoryUnspecified)
				if err != nil {
					t.Fatal(err)
				}
				paths = append(paths, p)
				w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), sstable.WriterOptions{
					TableFormat: b.db.FormatMajorVersion().MaxTableFormat(),
				})
			}
			_, key := bulkKey(i, maxPar)
			k = appendPrefix(k[:0], kg, tag, key)
			if err := w.Set(k, bulkValue(i, 0)); err != nil {
				t.Fatal(err)
			}
			if inFile++; inFile == 500_000 {
				finish()
				inFile = 0
			}
		}
	}
	finish()
	if err := b.db.Ingest(context.Background(), paths); err != nil {
		t.Fatal(err)
	}
	b.complete = false // the keys went around the cache
}

// bulkUpdate changes `changes` random keys of the n through the backend, as
// the record path would.
func bulkUpdate(t testing.TB, b state.Backend, id state.ID, n, changes int, rng *rand.Rand, version int) {
	t.Helper()
	maxPar := b.(*backend).info.MaxParallelism
	for c := 0; c < changes; c++ {
		i := rng.IntN(n)
		kg, key := bulkKey(i, maxPar)
		b.SetCurrentKey(kg, key)
		if err := b.Put(id, nil, bulkValue(i, version)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestIncrementalUploadBound: with 1M and 5M keys, changing 1% of them
// between two checkpoints makes the second upload at most 10% of the bytes
// of the first. (Measured at scale, with the SST-level alternative, by
// bench/state.)
func TestIncrementalUploadBound(t *testing.T) {
	for _, n := range []int{1_000_000, 5_000_000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			h := memHarness(t)
			bs, err := h.restore(nil, 1, Options{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll(t, bs)
			bulkLoad(t, bs[0], "n", n)
			id, _ := bs[0].Register("n", state.KindValue)
			h.checkpoint(1, bs)
			bulkUpdate(t, bs[0], id, n, n/100, rand.New(rand.NewPCG(1, uint64(n))), 1)
			h.checkpoint(2, bs)
			ratio := float64(h.uploaded[2]) / float64(h.uploaded[1])
			t.Logf("%d keys, 1%% changed: checkpoint 1 uploaded %d bytes, checkpoint 2 %d bytes (%.2f%%)", n, h.uploaded[1], h.uploaded[2], 100*ratio)
			if ratio > 0.10 {
				t.Fatalf("checkpoint 2 uploaded %.1f%% of checkpoint 1's bytes, want at most 10%%", 100*ratio)
			}
			// Spot-check the state.
			for _, i := range []int{0, n / 2, n - 1} {
				kg, key := bulkKey(i, h.maxPar)
				bs[0].SetCurrentKey(kg, key)
				if _, ok, err := bs[0].Get(id, nil); err != nil || !ok {
					t.Fatalf("key %d: ok=%v err=%v", i, ok, err)
				}
			}
		})
	}
}
