package pebblestate

import (
	"hash/maphash"
	"unsafe"
)

// entryTable indexes the write-back cache: encoded key -> entry. It replaces
// a Go map because, with a million keys, the lookup is a string of cache
// misses, and the record path does one or two for every record (measured:
// 14% of bench/suite's keyed count's CPU in map lookups, and 6% in the map's
// growth). Here a lookup is one miss for its slot, which holds the key's
// full hash, and one for the entry, which it reads anyway; and slotOf lets
// Prefetch take those misses for a whole batch of records at once, so that
// they overlap instead of following one another.
//
// The table is split into parts by the top bits of the hash, each an open
// addressing array with linear probing that doubles on its own: growing
// rehashes one part, so the record path never stops for the whole table.
type entryTable struct {
	seed  maphash.Seed
	parts [tableParts]tablePart
	// cursor is where the next scan starts, so that eviction does not
	// revisit the same dirty entries every time.
	cursor int
}

const (
	tablePartBits = 6
	tableParts    = 1 << tablePartBits
	tableMinSlots = 8
)

type tablePart struct {
	slots []tableSlot // a power of two long, or empty
	n     int
}

// tableSlot is empty when e is nil.
type tableSlot struct {
	h uint64
	e *entry
}

func newEntryTable() *entryTable { return &entryTable{seed: maphash.MakeSeed()} }

func (t *entryTable) part(h uint64) *tablePart { return &t.parts[h>>(64-tablePartBits)] }

// get returns the entry of k, or nil.
func (t *entryTable) get(k []byte) *entry {
	h := maphash.Bytes(t.seed, k)
	p := t.part(h)
	if len(p.slots) == 0 {
		return nil
	}
	mask := uint64(len(p.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.e == nil {
			return nil
		}
		if s.h == h && s.e.key == string(k) {
			return s.e
		}
	}
}

// slotOf returns the slot where a lookup of k starts, or nil. Prefetch uses
// it to load slots of many keys in one tight loop, whose loads overlap.
func (t *entryTable) slotOf(k []byte) *tableSlot {
	h := maphash.Bytes(t.seed, k)
	p := t.part(h)
	if len(p.slots) == 0 {
		return nil
	}
	return &p.slots[h&uint64(len(p.slots)-1)]
}

// put makes e the entry of e.key, replacing the entry it had.
func (t *entryTable) put(e *entry) {
	h := maphash.String(t.seed, e.key)
	p := t.part(h)
	if (p.n+1)*4 > len(p.slots)*3 {
		p.grow()
	}
	mask := uint64(len(p.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &p.slots[i]
		if s.e == nil {
			*s = tableSlot{h: h, e: e}
			p.n++
			return
		}
		if s.h == h && s.e.key == e.key {
			s.e = e
			return
		}
	}
}

func (p *tablePart) grow() {
	old := p.slots
	p.slots = make([]tableSlot, max(2*len(old), tableMinSlots))
	mask := uint64(len(p.slots) - 1)
	for _, s := range old {
		if s.e == nil {
			continue
		}
		i := s.h & mask
		for p.slots[i].e != nil {
			i = (i + 1) & mask
		}
		p.slots[i] = s
	}
}

// removeAt empties slot i of p and shifts back the entries after it that
// probing would no longer find (no tombstones: lookups stay short).
func (p *tablePart) removeAt(i uint64) {
	mask := uint64(len(p.slots) - 1)
	for j := (i + 1) & mask; p.slots[j].e != nil; j = (j + 1) & mask {
		home := p.slots[j].h & mask
		// The entry at j may fill i only if its home is not in (i, j].
		if (j-home)&mask >= (j-i)&mask {
			p.slots[i] = p.slots[j]
			i = j
		}
	}
	p.slots[i] = tableSlot{}
	p.n--
}

// scan calls fn for the entries, starting where the last scan stopped,
// until fn says stop or every entry was seen. fn may ask for the entry to be
// removed. Removing never makes scan skip an entry (the shift moves entries
// ahead of i back to i at the earliest, and i is looked at again), but an
// entry whose probe sequence wraps around the end may be seen twice.
func (t *entryTable) scan(fn func(e *entry) (remove, stop bool)) {
	for n := range tableParts {
		pi := (t.cursor + n) % tableParts
		p := &t.parts[pi]
		for i := uint64(0); i < uint64(len(p.slots)); {
			e := p.slots[i].e
			if e == nil {
				i++
				continue
			}
			remove, stop := fn(e)
			if remove {
				p.removeAt(i) // another entry may now be at i
			} else {
				i++
			}
			if stop {
				t.cursor = pi + 1
				return
			}
		}
	}
}

// getString is get for a key held as a string.
func (t *entryTable) getString(k string) *entry {
	return t.get(unsafe.Slice(unsafe.StringData(k), len(k)))
}
