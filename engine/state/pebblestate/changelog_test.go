package pebblestate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type segEntry struct {
	op   byte
	k, v string
}

func writeTestSegment(t testing.TB, path string, es []segEntry) int64 {
	t.Helper()
	w, err := createSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		w.add(e.op, []byte(e.k), []byte(e.v))
	}
	size, err := w.close()
	if err != nil {
		t.Fatal(err)
	}
	return size
}

func readTestSegment(path string) ([]segEntry, error) {
	var got []segEntry
	_, err := readSegment(path, func(op byte, k, v []byte) error {
		got = append(got, segEntry{op, string(k), string(v)})
		return nil
	})
	return got, err
}

func TestSegmentRoundTrip(t *testing.T) {
	for _, es := range [][]segEntry{
		nil,
		{{opPut, "a", "1"}},
		{{opPut, "", ""}, {opDelete, "a", ""}, {opPut, "ab", strings.Repeat("v", 300)}, {opDelete, "b", ""}, {opPut, strings.Repeat("k", 200), "x"}},
	} {
		path := filepath.Join(t.TempDir(), "s.seg")
		size := writeTestSegment(t, path, es)
		if info, err := os.Stat(path); err != nil || info.Size() != size {
			t.Fatalf("close returned size %d, the file has %v (%v)", size, info.Size(), err)
		}
		got, err := readTestSegment(path)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(es) {
			t.Fatalf("read %v, wrote %v", got, es)
		}
	}
}

func TestSegmentCorrupt(t *testing.T) {
	good := []segEntry{{opPut, "a", "1"}, {opDelete, "b", ""}, {opPut, "c", "333"}}
	for _, c := range []struct {
		name    string
		entries []segEntry
		edit    func([]byte) []byte
		want    string
	}{
		{"bit flip", good, func(d []byte) []byte { d[len(d)-segTrailerLen-1] ^= 0x40; return d }, "checksum"},
		{"truncated", good, func(d []byte) []byte { return d[:len(d)-3] }, "no trailer"},
		{"too short", good, func(d []byte) []byte { return d[:10] }, "shorter than its framing"},
		{"other format", good, func(d []byte) []byte { copy(d, "OFSEG99\n"); return d }, "unknown format"},
		{"count", good, func(d []byte) []byte { binary.BigEndian.PutUint64(d[len(d)-segTrailerLen:], 2); return d }, "3 entries, the trailer says 2"},
		{"cut entry", good, func(d []byte) []byte {
			// Drop the last value byte, keeping a valid trailer.
			t := append([]byte(nil), d[len(d)-segTrailerLen:]...)
			return append(d[:len(d)-segTrailerLen-1], t...)
		}, "entry 2: value: unexpected EOF"},
		{"order", []segEntry{{opPut, "b", "1"}, {opPut, "a", "2"}}, nil, "entry 1: keys out of order"},
		{"duplicate", []segEntry{{opPut, "a", "1"}, {opPut, "a", "2"}}, nil, "entry 1: keys out of order"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "s.seg")
			writeTestSegment(t, path, c.entries)
			if c.edit != nil {
				d, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, c.edit(d), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := readTestSegment(path)
			if !errors.Is(err, errCorruptSegment) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want a corrupt segment error with %q", err, c.want)
			}
		})
	}
}

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

func FuzzReadSegment(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.seg")
	writeTestSegment(f, path, []segEntry{{opPut, "a", "1"}, {opDelete, "b", ""}})
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "s.seg")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var prev []byte
		_, err := readSegment(p, func(op byte, k, v []byte) error {
			if prev != nil && string(prev) >= string(k) {
				t.Fatalf("keys out of order passed: %q then %q", prev, k)
			}
			prev = append(prev[:0], k...)
			return nil
		})
		if err != nil && !errors.Is(err, errCorruptSegment) {
			t.Fatalf("not a corrupt segment error: %v", err)
		}
	})
}
