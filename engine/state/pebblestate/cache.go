package pebblestate

import (
	"bytes"
	"fmt"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onceflow/onceflow/engine/state"
)

// The write-back cache is one map from encoded Pebble key to entry, owned
// by the record path: it holds the newest value of every key it holds, so a
// read is one map lookup, and Pebble is read only on a miss.
//
// Entries carry the epoch that last wrote them. A snapshot freezes the
// current epoch: its list of written entries goes to the asynchronous part,
// which copies them to write its changelog segment. Until that is done
// (the written epoch reaches theirs) the record path must not modify them,
// and copies an entry it writes again (copy on write); afterwards it updates
// entries in place, except while an ingestion into Pebble must still copy
// them (held, ingest.go). Entries of applied epochs are clean (in Pebble
// too) and may be evicted when the cache outgrows its budget.

type entry struct {
	key string // its key in the cache (the same string, not a copy)
	val []byte
	del bool // a tombstone: the key was deleted
	// listed: in the list of entries waiting for ingestion (ingest.go).
	// Only the asynchronous part, under wmu, reads and writes it.
	listed bool
	epoch  uint64 // that last wrote it; 0: only read from Pebble
	// inline holds a key of up to 16 bytes and a value of up to 8 (a
	// counter, an id), so that such an entry is one allocation, not
	// three: a third of the objects for the garbage collector to mark,
	// and a lookup and a snapshot's read of the entry touch one place in
	// memory instead of three (measured: bench/suite's keyed count, 1M
	// keys).
	inline [inlineKey + inlineValue]byte
}

const (
	inlineKey   = 16
	inlineValue = 8
)

// newEntry makes the entry of k with value v (or a tombstone). Map-state
// keys are not inlined: the Scan index keeps their strings, which would
// keep a replaced entry alive.
func newEntry(k []byte, v []byte, del bool, epoch uint64, mapKey bool) *entry {
	e := &entry{del: del, epoch: epoch}
	if len(k) <= inlineKey && !mapKey {
		n := copy(e.inline[:inlineKey], k)
		e.key = unsafe.String(&e.inline[0], n)
	} else {
		e.key = string(k)
	}
	e.initValue(v)
	return e
}

// initValue sets a new entry's value: inline if it fits.
func (e *entry) initValue(v []byte) {
	if len(v) <= inlineValue {
		e.val = append(e.inline[inlineKey:inlineKey:inlineKey+inlineValue], v...)
	} else {
		e.val = bytes.Clone(v)
	}
}

// entryOverhead estimates the memory of an entry beyond its key and value
// bytes: the map slot, the entry, and its place in an epoch's list.
const entryOverhead = 112

func entrySize(k string, e *entry) int64 { return int64(len(k)+cap(e.val)) + entryOverhead }

// cacheGet returns the cached entry of k.
func (b *backend) cacheGet(k []byte) (*entry, bool) {
	e := b.cache.get(k)
	return e, e != nil
}

// cacheWrite records v (or a tombstone) for k in the current epoch.
// prefixLen > 0 marks a map-state key whose first prefixLen bytes are its
// (state, key) prefix, indexed for Scan. hint, when set, is k's entry in
// the cache (saving the lookup).
func (b *backend) cacheWrite(k, v []byte, del bool, prefixLen int, hint *entry) {
	e, ok := hint, hint != nil
	if !ok {
		e = b.cache.get(k)
		ok = e != nil
	}
	if ok && (e.epoch == b.epoch || e.epoch <= b.writtenSeen && !b.held(e.epoch)) {
		// Nobody else reads it: update in place (a counter update
		// allocates nothing).
		old := entrySize("", e)
		e.val = append(e.val[:0], v...)
		e.del = del
		b.cacheBytes += entrySize("", e) - old
		if e.epoch != b.epoch {
			if e.epoch <= b.appliedSeen {
				b.newBytes += entrySize(e.key, e) // it was clean
			}
			e.epoch = b.epoch
			b.dirty = appendDirty(b.dirty, e)
			b.dirtyBytes += entrySize(e.key, e)
		}
		return
	}
	var ne *entry
	if ok && prefixLen > 0 {
		// The Scan index holds this key's string already.
		ne = &entry{key: e.key, del: del, epoch: b.epoch}
		ne.initValue(v)
	} else {
		ne = newEntry(k, v, del, b.epoch, prefixLen > 0)
		if !ok && prefixLen > 0 {
			b.indexPrefix(ne.key, prefixLen)
		}
	}
	if ok {
		b.cacheBytes -= entrySize(e.key, e) // copy on write: the frozen one stays with its epoch
	}
	// The table keeps no key of its own: it never points into the frozen
	// entry.
	b.cache.put(ne)
	size := entrySize(ne.key, ne)
	b.cacheBytes += size
	b.dirty = appendDirty(b.dirty, ne)
	b.dirtyBytes += size
	b.newBytes += size
}

// cacheRead caches what a Pebble read found (or that it found nothing) and
// returns the entry.
func (b *backend) cacheRead(k, v []byte, found bool, prefixLen int) *entry {
	e := newEntry(k, v, !found, 0, prefixLen > 0)
	if prefixLen > 0 {
		b.indexPrefix(e.key, prefixLen)
	}
	b.cache.put(e)
	b.cacheBytes += entrySize(e.key, e)
	return e
}

func (b *backend) indexPrefix(ks string, prefixLen int) {
	p := ks[:prefixLen]
	set := b.prefixes[p]
	if set == nil {
		set = map[string]struct{}{}
		b.prefixes[p] = set
	}
	set[ks] = struct{}{}
}

// evict drops clean entries (in Pebble already) while the cache exceeds
// its budget. It gives up early when little is clean: entries not yet in
// Pebble cannot go, and scanning for them would stall the record path.
func (b *backend) evict() {
	budget := b.opts.WriteCacheSize
	if b.cacheBytes <= budget || b.cacheBytes-b.newBytes-b.frozenBytes < budget/8 {
		return
	}
	target := budget - budget/8
	scanned := 0
	b.last.e = nil // it may be about to go
	b.cache.scan(func(e *entry) (remove, stop bool) {
		scanned++
		if e.epoch == b.epoch || e.epoch > b.appliedSeen {
			return false, scanned > 1<<20
		}
		k := e.key
		b.complete = false
		b.cacheBytes -= entrySize(k, e)
		if pl := b.mapPrefixLen(k); pl > 0 {
			if set := b.prefixes[k[:pl]]; set != nil {
				delete(set, k)
				if len(set) == 0 {
					delete(b.prefixes, k[:pl])
				}
			}
		}
		return true, b.cacheBytes <= target || scanned > 1<<20
	})
}

// warm loads a restored database into the cache if it fits in three
// quarters of the budget: the cache is then complete and a restored job
// runs as fast as a fresh one, instead of paying a Pebble read for the
// first access of every key. A state estimated too big (from its tables'
// properties) is not loaded at all: a part of it, in key order, would cost
// restore time for little gain. Should the estimate be short, loading stops
// at the limit, leaving a warm read cache.
func (b *backend) warm() error {
	limit := b.opts.WriteCacheSize / 4 * 3
	if est, err := b.estimateCacheBytes(); err != nil {
		return fmt.Errorf("estimate the restored state's size: %w", err)
	} else if est > limit {
		return nil
	}
	// Map-state keys must be indexed for Scan: the restored states'
	// kinds are known before the operators register them.
	b.cmu.Lock()
	for _, d := range b.decls {
		if d.Kind == state.KindMap {
			b.mapTags[stateTag(d.Name)] = true
		}
	}
	b.cmu.Unlock()
	// The marker key (key group 0xffff) is not state.
	it, err := b.db.NewIter(&pebble.IterOptions{UpperBound: markerKey[:2]})
	if err != nil {
		return fmt.Errorf("load the restored state into the cache: %w", err)
	}
	valid := it.First()
	for ; valid && b.cacheBytes < limit; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			it.Close()
			return fmt.Errorf("load the restored state into the cache: %w", err)
		}
		b.cacheRead(it.Key(), v, true, b.mapPrefixLen(string(it.Key())))
	}
	b.complete = !valid
	if err := it.Error(); err != nil {
		it.Close()
		return fmt.Errorf("load the restored state into the cache: %w", err)
	}
	return it.Close()
}

// estimateCacheBytes estimates what the database would take in the cache,
// from its tables' properties (an overestimate where levels hold older
// versions of the same keys).
func (b *backend) estimateCacheBytes() (int64, error) {
	levels, err := b.db.SSTables(pebble.WithProperties())
	if err != nil {
		return 0, err
	}
	var n int64
	for _, level := range levels {
		for _, t := range level {
			if p := t.Properties; p != nil {
				n += int64(p.NumEntries)*entryOverhead + int64(p.RawKeySize+p.RawValueSize)
			}
		}
	}
	return n, nil
}

// appendDirty appends e to an epoch's list, doubling it when full: append
// grows a long slice by about a quarter, and every growth copies the list
// into memory that must be faulted in (about 3 ms per MiB on the machines
// we measure on), which a job meeting hundreds of thousands of new keys an
// interval paid again and again.
func appendDirty(l []*entry, e *entry) []*entry {
	if len(l) == cap(l) {
		nl := make([]*entry, len(l), max(2*cap(l), 1024))
		copy(nl, l)
		l = nl
	}
	return append(l, e)
}
