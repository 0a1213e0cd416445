package pebblestate

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unsafe"
)

// Every snapshot writes its epoch's entries as one sorted changelog
// segment: hundreds of thousands of them per second under a fast keyed job,
// in random key order. Sorting the entries by comparison spent its time on
// branch mispredictions and on cache misses, fetching keys, entries and
// values scattered over the heap. The sorter instead reads every entry once,
// in address order (byAddress), into small pointer-free records holding
// the first 16 bytes of its key and, when it has at most 8, its value; only
// longer keys and values are copied into one buffer. It radix sorts the
// records: one pass per byte that differs between keys (stored keys share
// their state tag and mostly their length, so most bytes are skipped: the
// bits that differ are collected while reading), then
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
	ptrs          []*entry // byAddress's scratch
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
	s.byAddress(gen)
	var first, diff [2]uint64 // the first prefix, and the bits where others differ from it
	for i, e := range gen {
		var p [16]byte
		copy(p[:], e.key)
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
		if i == 0 {
			first = [2]uint64{x.hi, x.lo}
		}
		diff[0] |= x.hi ^ first[0]
		diff[1] |= x.lo ^ first[1]
		a = append(a, x)
	}
	if len(gen) > 0 {
		s.bytesPerEntry = (len(data) + len(gen) - 1) / len(gen)
	}
	captured()
	tmp := grow(s.tmp, len(a))[:len(a)]
	// Least significant digit first; each pass is stable.
	for d := 15; d >= 0; d-- {
		if byte(diff[d/8]>>(56-8*(d%8))) == 0 {
			continue // every key has the same byte here
		}
		var h [256]int
		for i := range a {
			h[digit(&a[i], d)]++
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

// grow returns buf emptied, with room for n entries. It doubles: a job's
// generations grow while it meets new keys, and every new buffer's pages
// are faulted in (about 3 ms per MiB on the machines we measure on), so
// growing by a quarter each time, as this did, faulted in twice the final
// size; pages of the headroom that stay unused are never touched.
func grow(buf []sortedEntry, n int) []sortedEntry {
	if cap(buf) >= n {
		return buf[:0]
	}
	return make([]sortedEntry, 0, 2*n)
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

// byAddress orders gen by the memory page of each entry, so that the
// sorter's read of every entry walks the heap page by page. In the epoch's
// order, which is the order the job met its keys in, every read may go to
// another page: a TLB miss each, costly on virtual machines (measured, half
// a million entries written in random key order: 120 ns an entry, 80 in
// page order counting the ordering, 35 in allocation order). The order
// within gen does not matter otherwise: the records are sorted by key
// afterwards.
func (s *genSorter) byAddress(gen []*entry) {
	if len(gen) < 2 {
		return
	}
	const pageShift = 12
	page := func(e *entry) uintptr { return uintptr(unsafe.Pointer(e)) >> pageShift }
	lo, hi := page(gen[0]), page(gen[0])
	backwards, prev := 0, lo
	for _, e := range gen {
		p := page(e)
		lo, hi = min(lo, p), max(hi, p)
		if p < prev {
			backwards++
		}
		prev = p
	}
	if backwards < len(gen)/8 {
		// Mostly in address order already: a job that touches its keys
		// in the order it first saw them writes its epochs so.
		return
	}
	span := hi - lo
	if cap(s.ptrs) < len(gen) {
		s.ptrs = make([]*entry, len(gen))
	}
	src, dst := gen, s.ptrs[:len(gen)]
	const digitBits = 11
	for shift := uint(0); span>>shift != 0; shift += digitBits {
		var count [1 << digitBits]int
		for _, e := range src {
			count[((page(e)-lo)>>shift)&(1<<digitBits-1)]++
		}
		sum := 0
		for c, n := range count {
			count[c] = sum
			sum += n
		}
		for _, e := range src {
			c := ((page(e) - lo) >> shift) & (1<<digitBits - 1)
			dst[count[c]] = e
			count[c]++
		}
		src, dst = dst, src
	}
	if &src[0] != &gen[0] {
		copy(gen, src)
	}
	clear(s.ptrs) // keep no entry alive
}
