package pebblestate

import "bytes"

// cacheMap is one generation of the write-back cache: encoded Pebble key ->
// encoded value or tombstone. The dirty generation is written by the record
// path only; once frozen by a snapshot it is immutable and read by both the
// record path and the asynchronous part (concurrent reads of a Go map are
// safe), until the record path drops it.
type cacheMap struct {
	m map[string]*entry
	// prefixes indexes the keys of map states by their (state, key) prefix,
	// so that Scan finds the cached entries of one map without looking at
	// the whole cache.
	prefixes map[string][]string
	bytes    int64 // estimated memory held
}

type entry struct {
	val []byte
	del bool // a tombstone: deleted since the generation began
}

// entryOverhead estimates the memory of an entry beyond its key and value
// bytes: the map slot, the entry struct, the string and slice headers.
const entryOverhead = 96

func newCacheMap() *cacheMap {
	return &cacheMap{m: map[string]*entry{}}
}

func (c *cacheMap) get(k []byte) (*entry, bool) {
	e, ok := c.m[string(k)]
	return e, ok
}

// put records v (or a tombstone) for k. prefixLen > 0 marks a map-state key
// whose first prefixLen bytes are its (state, key) prefix.
func (c *cacheMap) put(k, v []byte, del bool, prefixLen int) {
	if e, ok := c.m[string(k)]; ok {
		c.bytes += int64(cap(v) - cap(e.val))
		// Reuse the old buffer: updating a counter allocates nothing.
		e.val = append(e.val[:0], v...)
		e.del = del
		return
	}
	ks := string(k)
	e := &entry{val: bytes.Clone(v), del: del}
	if e.val == nil {
		e.val = []byte{}
	}
	c.m[ks] = e
	c.bytes += int64(len(ks)+cap(e.val)) + entryOverhead
	if prefixLen > 0 {
		if c.prefixes == nil {
			c.prefixes = map[string][]string{}
		}
		p := ks[:prefixLen]
		c.prefixes[p] = append(c.prefixes[p], ks)
		c.bytes += int64(len(p)) + 16
	}
}
