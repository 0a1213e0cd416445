package pebblestate

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"testing"

	"github.com/onceflow/onceflow/engine/state"
)

// TestEntryTableModel runs random puts, replacements, deletes and
// evicting scans against a Go map, at sizes where the parts are small
// and probe sequences often wrap around their ends.
func TestEntryTableModel(t *testing.T) {
	for _, keys := range []int{50, 700, 5000} {
		t.Run(fmt.Sprint(keys), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(keys)))
			tab := newEntryTable()
			model := map[string]*entry{}
			check := func(step int) {
				t.Helper()
				if tab.len() != len(model) {
					t.Fatalf("step %d: len %d, model %d", step, tab.len(), len(model))
				}
				for k, want := range model {
					if got := tab.get([]byte(k)); got != want {
						t.Fatalf("step %d: get %q = %p, want %p", step, k, got, want)
					}
				}
				seen := 0
				tab.each(func(e *entry) {
					if model[e.key] != e {
						t.Fatalf("step %d: each yields %q, not in the model", step, e.key)
					}
					seen++
				})
				if seen != len(model) {
					t.Fatalf("step %d: each yields %d entries, want %d", step, seen, len(model))
				}
			}
			for step := range 8 * keys {
				k := fmt.Sprintf("key-%d", rng.IntN(keys))
				switch op := rng.IntN(10); {
				case op < 6:
					e := newEntry([]byte(k), []byte{byte(step)}, false, uint64(step), false)
					tab.put(e)
					model[k] = e
				case op < 9:
					tab.delete(k)
					delete(model, k)
				default:
					// Evict the entries of even epochs, stopping at a random point.
					limit := rng.IntN(len(model) + 1)
					visited := 0
					tab.scan(func(e *entry) (remove, stop bool) {
						visited++
						remove = e.epoch%2 == 0
						if remove {
							delete(model, e.key)
						}
						return remove, visited >= limit
					})
				}
				if step%(keys/10+1) == 0 {
					check(step)
				}
			}
			check(-1)
			if tab.get([]byte("absent")) != nil {
				t.Fatal("an absent key was found")
			}
		})
	}
}

// TestEntryTableScanSeesAll: a scan that removes entries as it goes never
// skips one (it may see one twice), so a whole scan removes every entry
// it is asked to.
func TestEntryTableScanSeesAll(t *testing.T) {
	tab := newEntryTable()
	for i := range 5000 {
		tab.put(newEntry(fmt.Appendf(nil, "k%d", i), nil, false, uint64(i), false))
	}
	tab.scan(func(e *entry) (remove, stop bool) { return e.epoch%3 != 0, false })
	if tab.len() != 1667 {
		t.Fatalf("%d entries left, want 1667", tab.len())
	}
	tab.each(func(e *entry) {
		if e.epoch%3 != 0 {
			t.Fatalf("entry %q of epoch %d was not removed", e.key, e.epoch)
		}
	})
}

// TestEntryTablePutReplaces: putting a new entry for a key replaces the old
// one, and the key found is the new entry's own string.
func TestEntryTablePutReplaces(t *testing.T) {
	tab := newEntryTable()
	a := newEntry([]byte("k"), []byte("a"), false, 1, false)
	b := newEntry([]byte("k"), []byte("b"), false, 2, false)
	tab.put(a)
	tab.put(b)
	if tab.len() != 1 || tab.get([]byte("k")) != b || tab.getString("k") != b {
		t.Fatalf("len %d, get %p, want 1 and %p", tab.len(), tab.get([]byte("k")), b)
	}
}

// TestPrefetch: Prefetch loads the slots and entries of the announced keys'
// value states (the sum of what it loaded changes only if it found them)
// and changes nothing a later access sees.
func TestPrefetch(t *testing.T) {
	h := memHarness(t)
	bs, err := h.restore(nil, 1, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, bs)
	b := bs[0]
	id, err := b.Register("count", state.KindValue)
	if err != nil {
		t.Fatal(err)
	}
	var kgs []int
	var keys [][]byte
	for i := range 100 {
		k := fmt.Appendf(nil, "k%d", i)
		b.SetCurrentKey(i, k)
		if err := b.Put(id, nil, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		kgs, keys = append(kgs, i), append(keys, k)
	}
	pf := b.(state.Prefetcher)
	before := b.(*backend).prefetch.sum
	pf.Prefetch(kgs, keys)
	if b.(*backend).prefetch.sum == before {
		t.Fatal("Prefetch loaded nothing")
	}
	for i, k := range keys {
		b.SetCurrentKey(kgs[i], k)
		v, ok, err := b.Get(id, nil)
		if err != nil || !ok || len(v) != 1 || v[0] != byte(i) {
			t.Fatalf("key %s after Prefetch: %v %v %v", k, v, ok, err)
		}
	}
}

func (t *entryTable) len() int {
	n := 0
	for i := range t.parts {
		n += t.parts[i].n
	}
	return n
}

// each calls fn for every entry; fn must not change the table.
func (t *entryTable) each(fn func(e *entry)) {
	for pi := range t.parts {
		for _, s := range t.parts[pi].slots {
			if s.e != nil {
				fn(s.e)
			}
		}
	}
}

// delete removes the entry of k, if any (the backend removes entries only
// by scanning, when it evicts).
func (t *entryTable) delete(k string) {
	h := maphash.String(t.seed, k)
	p := t.part(h)
	if len(p.slots) == 0 {
		return
	}
	mask := uint64(len(p.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.e == nil {
			return
		}
		if s.h == h && s.e.key == k {
			p.removeAt(i)
			return
		}
	}
}
