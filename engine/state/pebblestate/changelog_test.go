package pebblestate

import (
	"os"
	"path/filepath"
	"testing"
)

// TestIngestSegments: restore merges stretches of log segments, sorted
// (older snapshots) and unsorted, newest value winning, and ingests the SST
// segments of snapshots written before segments became logs as they are,
// all in order.
func TestIngestSegments(t *testing.T) {
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
	for _, k := range []string{"\x00\x01a", "\x00\x01b", "\x00\x01f"} {
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
	seg0 := filepath.Join(dir, "0.seg")
	writeTestSegment(t, seg0, []segEntry{{opPut, "\x00\x01a", "v0"}, {opPut, "\x00\x01e", "ve0"}, {opPut, "\x00\x01f", "vf0"}}, true)
	seg1 := filepath.Join(dir, "1.seg")
	writeTestSegment(t, seg1, []segEntry{{opPut, "\x00\x01e", "ve1"}, {opDelete, "\x00\x01a", ""}, {opPut, "\x00\x01c", "vc"}}, false)
	seg2 := filepath.Join(dir, "2.seg")
	writeTestSegment(t, seg2, []segEntry{{opPut, "\x00\x01g", "vg"}, {opPut, "\x00\x01c", "vc2"}, {opDelete, "\x00\x01e", ""}}, false)
	paths := []string{seg0, old, seg1, seg2}
	if err := b.ingestSegments(b.db, paths, dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("ingest took the local copy away: %v", err)
		}
	}
	// f: the SST, later than segment 0, wins; a, c, e: the newest segment.
	for k, want := range map[string]string{"\x00\x01a": "", "\x00\x01b": "vb", "\x00\x01c": "vc2", "\x00\x01e": "", "\x00\x01f": "vf", "\x00\x01g": "vg"} {
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
