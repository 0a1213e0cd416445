package pebblestate

import (
	"bytes"
	"encoding/binary"
	"slices"
	"unsafe"
)

// Every snapshot writes its epoch's entries as a changelog segment, and
// every ingestion writes the entries of the epochs since the last one, each
// key once, in key order, as a table for Pebble: hundreds of thousands of
// entries per second under a fast keyed job. The sorter reads every entry
// once, in address order (byAddress), into small pointer-free records
// holding the first 16 bytes of its key and, when it has at most 8, its
// value; only longer keys and values are copied into one buffer. A segment
// is written from the records as they are. A table needs them sorted: a
// radix sort, one pass per byte that differs between keys (stored keys
// share their state tag and mostly their length, so most bytes are
// skipped: the bits that differ are collected while reading), then a
// comparison sort of the rare runs of keys equal in their first 16 bytes.
//
// Segments used to be sorted too, every snapshot. A job touching most of
// its keys every interval sorted all of them every interval: the largest
// cost of checkpointing every second (bench/suite: 4% of the CPU of a
// keyed count over 1M keys). Now only ingestion sorts, each key once
// however many epochs changed it, and restore sorts the segments it reads.
//
// Small keys and values travel inside the records because reading them
// from the buffer in key order, to write a table, missed the CPU cache once
// per entry (measured: 120 ns an entry).

// record is one captured entry.
type record struct {
	hi, lo     uint64 // the key's first 16 bytes, zero-padded, big-endian
	val        uint64 // the value, if at most 8 bytes: zero-padded, big-endian
	off        int    // in the records' data: the key if longer than 16 bytes, then the value if longer than 8
	klen, vlen int32  // vlen < 0: a tombstone
}

// records are captured entries with their keys and values, in the sorter's
// buffers: valid until the next capture.
type records struct {
	entries []record
	data    []byte
}

// sorter holds its buffers from one capture to the next (fresh memory is
// costly: page faults cost about 3 ms per MiB on the virtual machines we
// measure on), which serves a restore sorting segment after segment, and
// the bytes per entry of the last capture (to size the next one's data at
// once). A backend releases them after each ingestion (release):
// ingestions are rare (ingest.go), and keeping them in the heap between
// two (some 60 MB per subtask in bench/suite's keyed count, 1M keys over
// two subtasks) let the garbage collector grow the heap by as much again
// before it ran: the 1 s run peaked 100 MiB higher.
type sorter struct {
	a, tmp           []record
	data             []byte
	bytesPerEntry    int
	ptrs             []*entry  // byAddress's scratch
	segBytesPerEntry int       // of encodeGen's last call
	first, diff      [2]uint64 // the first key prefix, and the bits where others differ from it
}

// release drops the capture buffers (see sorter).
func (s *sorter) release() { s.a, s.tmp, s.data = nil, nil, nil }

// start empties the buffers for a capture of about n entries.
func (s *sorter) start(n int) {
	s.a = grow(s.a, n)
	s.data = s.data[:0]
	if want := n * s.bytesPerEntry; cap(s.data) < want {
		s.data = make([]byte, 0, want+want/4)
	}
	s.first, s.diff = [2]uint64{}, [2]uint64{}
}

// add captures one entry.
func add[K string | []byte](s *sorter, k K, v []byte, del bool) {
	var p [16]byte
	copy(p[:], k)
	x := record{hi: binary.BigEndian.Uint64(p[:8]), lo: binary.BigEndian.Uint64(p[8:]), off: len(s.data), klen: int32(len(k)), vlen: -1}
	if len(k) > len(p) {
		s.data = append(s.data, k...)
	}
	if !del {
		x.vlen = int32(len(v))
		if len(v) <= 8 {
			var b [8]byte
			copy(b[:], v)
			x.val = binary.BigEndian.Uint64(b[:])
		} else {
			s.data = append(s.data, v...)
		}
	}
	if len(s.a) == 0 {
		s.first = [2]uint64{x.hi, x.lo}
	}
	s.diff[0] |= x.hi ^ s.first[0]
	s.diff[1] |= x.lo ^ s.first[1]
	if len(s.a) == cap(s.a) {
		s.a = slices.Grow(s.a, len(s.a)) // doubling, not append's quarter: fewer copies into fresh memory
	}
	s.a = append(s.a, x)
}

// captured returns the records captured since start, in capture order.
func (s *sorter) captured() records {
	if len(s.a) > 0 {
		s.bytesPerEntry = (len(s.data) + len(s.a) - 1) / len(s.a)
	}
	return records{entries: s.a, data: s.data}
}

// encodeGen encodes an epoch's entries as a segment's entries (segment.go),
// in the order of their addresses (which reorders gen), into a new buffer,
// and appends those not listed yet to the list of entries waiting for
// ingestion. The buffer is sized from the bytes per entry of the last call,
// so that it is allocated once; it is not kept, for the reason the sorter
// releases its capture buffers (a segment of a million keys is some 20 MB).
func (s *sorter) encodeGen(gen []*entry, unapplied *[]*entry) []byte {
	s.byAddress(gen)
	want := len(gen) * s.segBytesPerEntry
	buf := make([]byte, 0, want+want/8)
	for _, e := range gen {
		if need := len(e.key) + len(e.val) + 2*binary.MaxVarintLen64; cap(buf)-len(buf) < need {
			// Double: append grows a long slice by a quarter, copying it
			// into fresh memory each time.
			nb := make([]byte, len(buf), 2*cap(buf)+need)
			copy(nb, buf)
			buf = nb
		}
		buf = appendSegmentEntry(buf, e.key, e.val, e.del)
		if !e.listed {
			e.listed = true
			*unapplied = appendDirty(*unapplied, e)
		}
	}
	if len(gen) > 0 {
		s.segBytesPerEntry = (len(buf) + len(gen) - 1) / len(gen)
	}
	return buf
}

// captureListed captures, for a table, the entries waiting for ingestion,
// each as last written, and unlists them. An entry replaced by a copy (copy
// on write) while frozen is taken as well as its copy, which was listed
// after it: sorted keeps the copy.
func (s *sorter) captureListed(unapplied []*entry) records {
	s.start(len(unapplied))
	for _, e := range unapplied {
		add(s, e.key, e.val, e.del)
		e.listed = false
	}
	return s.captured()
}

// sorted sorts the records captured since start by key and keeps, of equal
// keys, the one captured last.
func (s *sorter) sorted() records {
	r := s.captured()
	a := r.entries
	var digits []int // the bytes where keys differ, most significant first
	for d := 0; d < 16; d++ {
		if byte(s.diff[d/8]>>(56-8*(d%8))) != 0 {
			digits = append(digits, d)
		}
	}
	a, s.tmp = radixSort(a, grow(s.tmp, len(a))[:len(a)], digits)
	s.a = a
	// Keys equal in their first 16 bytes: order them by the whole key,
	// stably, and keep the last of each key.
	w := 0
	for i := 0; i < len(a); {
		j := i + 1
		for j < len(a) && a[j].hi == a[i].hi && a[j].lo == a[i].lo {
			j++
		}
		if j-i > 1 {
			var kx, ky [16]byte
			slices.SortStableFunc(a[i:j], func(x, y record) int { return bytes.Compare(r.key(&x, &kx), r.key(&y, &ky)) })
			for k := i; k < j; k++ {
				if k+1 < j && bytes.Equal(r.key(&a[k], &kx), r.key(&a[k+1], &ky)) {
					continue // a later capture of the same key wins
				}
				a[w] = a[k]
				w++
			}
		} else {
			a[w] = a[i]
			w++
		}
		i = j
	}
	r.entries = a[:w]
	return r
}

// radixSort sorts a by the given bytes of the records' key prefixes,
// least significant first, one stable pass each, with tmp (as long as a) as
// scratch. It returns the sorted records (a or tmp) and the other one.
func radixSort(a, tmp []record, digits []int) (sorted, scratch []record) {
	src, dst := a, tmp
	for i := len(digits) - 1; i >= 0; i-- {
		d := digits[i]
		var h [256]int
		for i := range src {
			h[digit(&src[i], d)]++
		}
		pos, sum := [256]int{}, 0
		for c, n := range h {
			pos[c] = sum
			sum += n
		}
		for i := range src {
			c := digit(&src[i], d)
			dst[pos[c]] = src[i]
			pos[c]++
		}
		src, dst = dst, src
	}
	return src, dst
}

// grow returns buf emptied, with room for n entries and an eighth more, so
// that a restore's next segment, about as large, fits.
func grow(buf []record, n int) []record {
	if cap(buf) >= n {
		return buf[:0]
	}
	return make([]record, 0, n+n/8)
}

// each calls fn with every record's operation, key and value, in order,
// until it fails.
func (r *records) each(fn func(op byte, k, v []byte) error) error {
	var kbuf [16]byte
	var vbuf [8]byte
	for i := range r.entries {
		x := &r.entries[i]
		op := opPut
		if x.vlen < 0 {
			op = opDelete
		}
		if err := fn(op, r.key(x, &kbuf), r.value(x, &vbuf)); err != nil {
			return err
		}
	}
	return nil
}

// key returns x's key: in the records' data, or built in buf.
func (r *records) key(x *record, buf *[16]byte) []byte {
	if x.klen > 16 {
		return r.data[x.off : x.off+int(x.klen)]
	}
	binary.BigEndian.PutUint64(buf[:8], x.hi)
	binary.BigEndian.PutUint64(buf[8:], x.lo)
	return buf[:x.klen]
}

// value returns x's value (empty for a tombstone): in the records' data, or
// built in buf.
func (r *records) value(x *record, buf *[8]byte) []byte {
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
func digit(x *record, d int) byte {
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
func (s *sorter) byAddress(gen []*entry) {
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
