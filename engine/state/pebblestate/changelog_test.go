package pebblestate

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIngestSSTSegment: snapshots written before segments became logs hold
// SST segments, which restore must still ingest.
func TestIngestSSTSegment(t *testing.T) {
	bs, err := memHarness(t).restore(nil, 1, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, bs)
	b := bs[0].(*backend)
	dir := t.TempDir()
	old := filepath.Join(dir, "old.sst")
	w, err := b.createTable(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"\x00\x01a", "\x00\x01b"} {
		if err := w.add(opPut, []byte(k), []byte("v"+k[2:])); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.add(opPut, markerKey, []byte("12345678")); err != nil {
		t.Fatal(err)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(dir, "new.seg")
	writeTestSegment(t, seg, []segEntry{{opDelete, "\x00\x01a", ""}, {opPut, "\x00\x01c", "vc"}})
	for _, p := range []string{old, seg} {
		if err := b.ingestSegment(b.db, p, dir); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ingest took the local copy away: %v", err)
		}
	}
	for k, want := range map[string]string{"\x00\x01a": "", "\x00\x01b": "vb", "\x00\x01c": "vc"} {
		v, closer, err := b.db.Get([]byte(k))
		got := ""
		if err == nil {
			got = string(v)
			closer.Close()
		}
		if got != want {
			t.Errorf("key %q: %q (%v), want %q", k, got, err, want)
		}
	}
}
