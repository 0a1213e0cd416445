package pebblestate

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// TestRefSorter compares the radix sort with a comparison sort on keys made
// to hit its corners: shorter than, exactly and longer than the 16 inline
// bytes, equal prefixes with different tails, zero bytes that padding could
// confuse with the end of a key, and constant bytes that passes skip.
func TestRefSorter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var s sorter
	for round := 0; round < 200; round++ {
		n := rng.IntN(2000)
		switch {
		case round == 0:
			n = 0
		case round%40 == 1: // larger than the buffers of earlier rounds
			n = 20000 + rng.IntN(5000)
		}
		seen := map[string]bool{}
		var gen []*entry
		for len(gen) < n {
			var k []byte
			switch rng.IntN(4) {
			case 0: // stored-key shape: key group, tag, length, key
				k = appendPrefix(nil, rng.IntN(4), 0xabcd, []byte(fmt.Sprint("k", rng.IntN(100000))))
			case 1: // a shared 16-byte prefix, different tails
				k = []byte("0123456789abcdef" + fmt.Sprint(rng.IntN(1000)))
			case 2: // short, with zeros
				k = make([]byte, rng.IntN(18))
				for i := range k {
					k[i] = byte(rng.IntN(3))
				}
			default:
				k = make([]byte, rng.IntN(40))
				for i := range k {
					k[i] = byte(rng.Uint32())
				}
			}
			if !seen[string(k)] {
				seen[string(k)] = true
				// Values of up to 8 bytes travel in the sort records,
				// longer ones in the run's data.
				v := []byte(strings.Repeat("v", rng.IntN(12)) + fmt.Sprint(len(gen)))
				gen = append(gen, &entry{key: string(k), val: v, del: rng.IntN(10) == 0})
			}
		}
		want := slices.Clone(gen)
		s.captureListed(gen)
		r := s.sorted()
		got := r.entries
		slices.SortFunc(want, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
		if len(got) != len(want) {
			t.Fatalf("round %d: %d entries sorted, want %d", round, len(got), len(want))
		}
		for i, w := range want {
			var kb [16]byte
			var vb [8]byte
			k, v, del := r.key(&got[i], &kb), r.value(&got[i], &vb), got[i].vlen < 0
			if string(k) != w.key || del != w.del || (!del && string(v) != string(w.val)) || (del && len(v) != 0) {
				t.Fatalf("round %d: position %d holds %q=%q (deleted %v), want %q=%q (deleted %v)", round, i, k, v, del, w.key, w.val, w.del)
			}
		}
	}
}

// TestMergeRuns merges runs with overlapping keys and tombstones and
// compares with applying them in order to a map: every key once, in order,
// with its newest value or tombstone.
func TestMergeRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var s sorter
	for round := 0; round < 100; round++ {
		want := map[string]*entry{}
		var runs []*os.File
		for n := rng.IntN(6); len(runs) < n; {
			seen := map[string]bool{}
			var gen []*entry
			for i := rng.IntN(300); i > 0; i-- {
				n := rng.IntN(200)
				k := fmt.Sprint("k", n)
				if n%3 == 0 { // longer than the 16 bytes the sort records hold
					k = "0123456789abcdef" + k
				}
				if seen[k] {
					continue
				}
				seen[k] = true
				e := &entry{key: k, val: []byte(fmt.Sprint(round, len(runs), i) + strings.Repeat("v", i%7)), del: rng.IntN(5) == 0}
				gen = append(gen, e)
				want[k] = e
			}
			path := filepath.Join(t.TempDir(), fmt.Sprint(len(runs)))
			s.captureListed(gen)
			if _, err := writeSortedSegment(path, s.sorted()); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			runs = append(runs, f)
		}
		var keys []string
		_, err := mergeRuns(runs, func(op byte, k, v []byte) error {
			w := want[string(k)]
			if w == nil || (op == opDelete) != w.del || (!w.del && string(v) != string(w.val)) {
				return fmt.Errorf("key %q: op %d value %q, want %+v", k, op, v, w)
			}
			keys = append(keys, string(k))
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if len(keys) != len(want) || !slices.IsSorted(keys) {
			t.Fatalf("round %d: merged %d keys (sorted: %v), want %d", round, len(keys), slices.IsSorted(keys), len(want))
		}
	}
}

// BenchmarkSort sorts an epoch of a million counters in 128 key groups, the
// shape of bench/suite's keyed count, written in the order their entries
// were allocated (as a job touching its keys in turn does).
func BenchmarkSort(b *testing.B) {
	gen := make([]*entry, 1_000_000)
	for i := range gen {
		k := appendPrefix(nil, i%128, 0xabcd, []byte(fmt.Sprint("k", i)))
		gen[i] = &entry{key: string(k), val: []byte("12345678")}
	}
	var s sorter
	b.ResetTimer()
	for range b.N {
		s.captureListed(gen)
		s.sorted()
	}
}

// TestByAddress: the sorter's read order is a permutation of the epoch's
// entries, page by page.
func TestByAddress(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var s sorter
	for _, n := range []int{0, 1, 2, 1000, 100_000} {
		gen := make([]*entry, n)
		for i := range gen {
			gen[i] = &entry{key: fmt.Sprint(i)}
		}
		rng.Shuffle(n, func(i, j int) { gen[i], gen[j] = gen[j], gen[i] })
		want := map[*entry]bool{}
		for _, e := range gen {
			want[e] = true
		}
		s.byAddress(gen)
		for i, e := range gen {
			if !want[e] {
				t.Fatalf("n=%d: entry %d is not one of the epoch's, or repeated", n, i)
			}
			delete(want, e)
			if i > 0 && uintptr(unsafe.Pointer(e))>>12 < uintptr(unsafe.Pointer(gen[i-1]))>>12 {
				t.Fatalf("n=%d: entry %d is on an earlier page than entry %d", n, i, i-1)
			}
		}
	}
}

// BenchmarkEncodeGen encodes an epoch of a million counters for its
// segment, as every snapshot does.
func BenchmarkEncodeGen(b *testing.B) {
	gen := make([]*entry, 1_000_000)
	for i := range gen {
		k := appendPrefix(nil, i%128, 0xabcd, []byte(fmt.Sprint("k", i)))
		gen[i] = &entry{key: string(k), val: []byte("12345678")}
	}
	var s sorter
	var listed []*entry
	b.ResetTimer()
	for range b.N {
		s.encodeGen(gen, &listed)
		for _, e := range listed {
			e.listed = false
		}
		listed = listed[:0]
	}
}

// TestSortedKeepsLast: of a key captured several times (an entry and its
// copy on write, in an ingestion), sorted keeps the last capture, for keys
// within the 16 bytes the records hold and longer ones.
func TestSortedKeepsLast(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	var s sorter
	for round := 0; round < 50; round++ {
		want := map[string]*entry{}
		var es []*entry
		for i := rng.IntN(3000); i > 0; i-- {
			k := fmt.Sprint("k", rng.IntN(500))
			if rng.IntN(3) == 0 {
				k = "0123456789abcdef" + k
			}
			e := &entry{key: k, val: []byte(fmt.Sprint(i, strings.Repeat("v", i%10))), del: rng.IntN(8) == 0}
			es = append(es, e)
			want[k] = e
		}
		s.captureListed(es)
		r := s.sorted()
		if len(r.entries) != len(want) {
			t.Fatalf("round %d: %d entries, want %d keys", round, len(r.entries), len(want))
		}
		for i := range r.entries {
			var kb [16]byte
			var vb [8]byte
			x := &r.entries[i]
			k, v, del := string(r.key(x, &kb)), string(r.value(x, &vb)), x.vlen < 0
			w := want[k]
			if w == nil || del != w.del || (!del && v != string(w.val)) {
				t.Fatalf("round %d: %q=%q (deleted %v), want the last capture %+v", round, k, v, del, w)
			}
			if i > 0 && string(r.key(&r.entries[i-1], &kb)) >= k {
				t.Fatalf("round %d: keys out of order at %d", round, i)
			}
		}
	}
}
