package pebblestate

import (
	"bytes"
	"encoding/binary"
	"slices"
)

// Every snapshot writes its epoch's entries as one sorted changelog
// segment: hundreds of thousands of them per second under a fast keyed job,
// in random key order. Sorting the entries by comparison spent its time on
// branch mispredictions and on cache misses, fetching keys, entries and
// values scattered over the heap. The sorter instead reads every entry once,
// in the order of the epoch's list, into small pointer-free records holding
// the first 16 bytes of its key and, when it has at most 8, its value; only
// longer keys and values are copied into one buffer. It radix sorts the
// records: one pass per byte that differs between keys (stored keys share
// their state tag and mostly their length, so most bytes are skipped), then
// a comparison sort of the rare runs of keys equal in their first 16 bytes.
//
// Small keys and values travel inside the records because reading them
// from the buffer in key order, to write the segment, missed the CPU cache
// once per entry (measured: 120 ns an entry, a fifth of a checkpoint's
// cost).

// sortedEntry is one entry of a sorted generation.
type sortedEntry struct {
	hi, lo     uint64 // the key's first 16 bytes, zero-padded, big-endian
	val        uint64 // the value, if at most 8 bytes: zero-padded, big-endian
	off        int    // in the generation's data: the key if longer than 16 bytes, then the value if longer than 8
	klen, vlen int32  // vlen < 0: a tombstone
}

// sortedGen is one generation in key order, with its keys and values, in
// the sorter's buffers: valid until the next sort.
type sortedGen struct {
	entries []sortedEntry
	data    []byte
}

// genSorter holds its buffers between snapshots (fresh memory is costly:
// page faults cost about 3 ms per MiB on the virtual machines we measure
// on), and the bytes per entry of the last generation (to size the next
// one's data at once).
type genSorter struct {
	a, tmp        []sortedEntry
	data          []byte
	bytesPerEntry int
}

// sort returns gen's entries in key order. gen's entries must not change
// until captured is called (a frozen epoch's do not): by then the sorter
// holds copies of their keys and values, and sorts those.
func (s *genSorter) sort(gen []*entry, captured func()) sortedGen {
	a := grow(s.a, len(gen))
	data := s.data[:0]
	if want := len(gen) * s.bytesPerEntry; cap(data) < want {
		data = make([]byte, 0, want+want/4)
	}
	var hist [16][256]int
	for _, e := range gen {
		var p [16]byte
		copy(p[:], e.key)
		for d, c := range p {
			hist[d][c]++
		}
		x := sortedEntry{hi: binary.BigEndian.Uint64(p[:8]), lo: binary.BigEndian.Uint64(p[8:]), off: len(data), klen: int32(len(e.key)), vlen: -1}
		if len(e.key) > len(p) {
			data = append(data, e.key...)
		}
		if !e.del {
			x.vlen = int32(len(e.val))
			if len(e.val) <= 8 {
				var v [8]byte
				copy(v[:], e.val)
				x.val = binary.BigEndian.Uint64(v[:])
			} else {
				data = append(data, e.val...)
			}
		}
		a = append(a, x)
	}
	if len(gen) > 0 {
		s.bytesPerEntry = (len(data) + len(gen) - 1) / len(gen)
	}
	captured()
	tmp := grow(s.tmp, len(a))[:len(a)]
	// Least significant digit first; each pass is stable.
	for d := 15; d >= 0; d-- {
		h := &hist[d]
		if len(a) == 0 || h[digit(&a[0], d)] == len(a) {
			continue // every key has the same byte here
		}
		pos, sum := [256]int{}, 0
		for c, n := range h {
			pos[c] = sum
			sum += n
		}
		for i := range a {
			c := digit(&a[i], d)
			tmp[pos[c]] = a[i]
			pos[c]++
		}
		a, tmp = tmp, a
	}
	s.a, s.tmp, s.data = a, tmp, data
	r := sortedGen{entries: a, data: data}
	// Keys equal in their first 16 bytes: order them by the whole key.
	for i := 0; i < len(a); {
		j := i + 1
		for j < len(a) && a[j].hi == a[i].hi && a[j].lo == a[i].lo {
			j++
		}
		if j-i > 1 {
			var kx, ky [16]byte
			slices.SortFunc(a[i:j], func(x, y sortedEntry) int { return bytes.Compare(r.key(&x, &kx), r.key(&y, &ky)) })
		}
		i = j
	}
	return r
}

// grow returns buf emptied, with room for n entries. It leaves headroom:
// generations vary in size.
func grow(buf []sortedEntry, n int) []sortedEntry {
	if cap(buf) >= n {
		return buf[:0]
	}
	return make([]sortedEntry, 0, n+n/4)
}

// key returns x's key: in the generation's data, or built in buf.
func (r *sortedGen) key(x *sortedEntry, buf *[16]byte) []byte {
	if x.klen > 16 {
		return r.data[x.off : x.off+int(x.klen)]
	}
	binary.BigEndian.PutUint64(buf[:8], x.hi)
	binary.BigEndian.PutUint64(buf[8:], x.lo)
	return buf[:x.klen]
}

// value returns x's value (empty for a tombstone): in the generation's data, or
// built in buf.
func (r *sortedGen) value(x *sortedEntry, buf *[8]byte) []byte {
	if x.vlen <= 8 {
		binary.BigEndian.PutUint64(buf[:], x.val)
		return buf[:max(0, x.vlen)]
	}
	off := x.off
	if x.klen > 16 {
		off += int(x.klen)
	}
	return r.data[off : off+int(x.vlen)]
}

// digit is byte d (0 is the most significant) of x's 16-byte prefix.
func digit(x *sortedEntry, d int) byte {
	if d < 8 {
		return byte(x.hi >> (56 - 8*d))
	}
	return byte(x.lo >> (56 - 8*(d-8)))
}
