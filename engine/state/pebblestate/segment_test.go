package pebblestate

import (
	"bytes"
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

func writeTestSegment(t testing.TB, path string, es []segEntry, sorted bool) int64 {
	t.Helper()
	w, err := createSegment(path, sorted)
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
		for _, sorted := range []bool{true, false} {
			path := filepath.Join(t.TempDir(), "s.seg")
			size := writeTestSegment(t, path, es, sorted)
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
			writeTestSegment(t, path, c.entries, true)
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

func FuzzReadSegment(f *testing.F) {
	path := filepath.Join(f.TempDir(), "seed.seg")
	writeTestSegment(f, path, []segEntry{{opPut, "a", "1"}, {opDelete, "b", ""}}, true)
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
		sorted := bytes.HasPrefix(data, segMagicSorted)
		var prev []byte
		_, err := readSegment(p, func(op byte, k, v []byte) error {
			if sorted && prev != nil && string(prev) >= string(k) {
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

// readSegment calls fn with every entry of the segment at path, in order.
// The checksum is checked once the last entry was read, so fn must not make
// anything durable before readSegment returns.
func readSegment(path string, fn func(op byte, k, v []byte) error) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := openSegment(f)
	if err != nil {
		return 0, err
	}
	for r.next() {
		if err := fn(r.op, r.key, r.val); err != nil {
			return r.n, err
		}
	}
	return r.n, r.err
}
