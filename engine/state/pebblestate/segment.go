package pebblestate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
)

// A changelog segment holds the changes of one interval between two
// snapshots: the entries of one epoch of the write cache (or of one spill
// of it), each key once, deletes as tombstones. Every snapshot writes one and
// uploads it; restore merges the segments after the base into one table,
// later changes winning, and ingests it: no record-by-record replay.
//
// Segments used to be SSTs. Encoding one cost about 250 ns per entry
// (Pebble's columnar writer, its bloom filter), which under a keyed job
// updating a million keys a second was half the cost of checkpointing
// (bench/suite). The record path never reads a segment, and Pebble gets
// the entries of several epochs in one table (ingest.go). So a segment is
// now a plain log, about 10 ns per entry. Restore still ingests SST
// segments, which older snapshots hold (changelog.go).
//
// Format: a magic, entries, a trailer.
//
//	magic    "OFSEG02\n": entries in any order (what snapshots write since
//	         they stopped sorting, sort.go); "OFSEG01\n": keys strictly
//	         increasing (older snapshots, and restore's sorted copies)
//	entries: uvarint(len(key)<<1 | tombstone), key, and unless a
//	         tombstone uvarint(len(value)), value
//	trailer: uint64 count, uint32 CRC32C of all bytes before the trailer,
//	         "OFSE" (big-endian)
var (
	segMagicSorted   = []byte("OFSEG01\n")
	segMagicUnsorted = []byte("OFSEG02\n")
)

const segTrailerLen = 16

var segTrailerMagic = []byte("OFSE")

const (
	opPut    byte = 1
	opDelete byte = 2
)

// segmentWriter writes one segment; entries must come in increasing key
// order if it is sorted.
type segmentWriter struct {
	path  string
	f     *os.File
	w     *bufio.Writer
	crc   crcWriter
	n     uint64
	entry []byte
}

// crcWriter checksums and counts what passes through it.
type crcWriter struct {
	w   io.Writer
	sum uint32
	n   int64
}

func (c *crcWriter) Write(p []byte) (int, error) {
	c.sum = crc32.Update(c.sum, castagnoli, p)
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func createSegment(path string, sorted bool) (*segmentWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create changelog segment: %w", err)
	}
	s := &segmentWriter{path: path, f: f, crc: crcWriter{w: f}}
	s.w = bufio.NewWriterSize(&s.crc, 256<<10)
	magic := segMagicUnsorted
	if sorted {
		magic = segMagicSorted
	}
	s.w.Write(magic) // errors surface at close (bufio keeps the first)
	return s, nil
}

func (s *segmentWriter) add(op byte, k, v []byte) {
	s.entry = appendSegmentEntry(s.entry[:0], k, v, op == opDelete)
	s.w.Write(s.entry)
	s.n++
}

// addEncoded adds n entries encoded already (appendSegmentEntry).
func (s *segmentWriter) addEncoded(entries []byte, n uint64) {
	s.w.Write(entries)
	s.n += n
}

// appendSegmentEntry appends the encoding of an entry to buf.
func appendSegmentEntry[K string | []byte](buf []byte, k K, v []byte, del bool) []byte {
	if del {
		buf = binary.AppendUvarint(buf, uint64(len(k))<<1|1)
		return append(buf, k...)
	}
	buf = binary.AppendUvarint(buf, uint64(len(k))<<1)
	buf = append(buf, k...)
	buf = binary.AppendUvarint(buf, uint64(len(v)))
	return append(buf, v...)
}

// close finishes the file and returns its size. No fsync: the store makes
// the segment durable, and local recovery uses this copy only once it has
// verified it against the checksum the store recorded.
func (s *segmentWriter) close() (int64, error) {
	err := s.w.Flush()
	if err == nil {
		var t [segTrailerLen]byte
		binary.BigEndian.PutUint64(t[:8], s.n)
		binary.BigEndian.PutUint32(t[8:12], s.crc.sum)
		copy(t[12:], segTrailerMagic)
		_, err = s.f.Write(t[:])
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.path)
		return 0, fmt.Errorf("write changelog segment %s: %w", s.path, err)
	}
	return s.crc.n + segTrailerLen, nil
}

// errCorruptSegment marks a segment that is not what its writer wrote.
var errCorruptSegment = errors.New("corrupt changelog segment")

// segmentReader reads a segment's entries in order, checking its framing,
// the key order of a sorted one and, after the last entry, its count and
// checksum.
type segmentReader struct {
	r       *bufio.Reader
	crc     *crcReader
	trailer [segTrailerLen]byte
	n       uint64 // entries read
	op      byte
	key     []byte // of the current entry
	val     []byte // of the current entry, empty for a tombstone
	prev    []byte
	sorted  bool
	err     error
}

// openSegment reads f from its start (f's offset is not used).
func openSegment(f *os.File) (*segmentReader, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	body := info.Size() - segTrailerLen
	if body < int64(len(segMagicSorted)) {
		return nil, fmt.Errorf("%w: %d bytes, shorter than its framing", errCorruptSegment, info.Size())
	}
	s := &segmentReader{}
	if _, err := f.ReadAt(s.trailer[:], body); err != nil {
		return nil, err
	}
	if !bytes.Equal(s.trailer[12:], segTrailerMagic) {
		return nil, fmt.Errorf("%w: no trailer", errCorruptSegment)
	}
	s.crc = &crcReader{r: io.NewSectionReader(f, 0, body)}
	s.r = bufio.NewReaderSize(s.crc, 64<<10)
	magic := make([]byte, len(segMagicSorted))
	if _, err := io.ReadFull(s.r, magic); err != nil {
		return nil, fmt.Errorf("%w: unknown format", errCorruptSegment)
	}
	switch {
	case bytes.Equal(magic, segMagicSorted):
		s.sorted = true
	case !bytes.Equal(magic, segMagicUnsorted):
		return nil, fmt.Errorf("%w: unknown format", errCorruptSegment)
	}
	return s, nil
}

// next moves to the next entry. At the end, or on an error (in s.err), it
// returns false.
func (s *segmentReader) next() bool {
	if s.err != nil {
		return false
	}
	h, err := binary.ReadUvarint(s.r)
	if err == io.EOF {
		if want := binary.BigEndian.Uint64(s.trailer[:8]); want != s.n {
			s.err = fmt.Errorf("%w: %d entries, the trailer says %d", errCorruptSegment, s.n, want)
		} else if want := binary.BigEndian.Uint32(s.trailer[8:12]); s.crc.sum != want {
			s.err = fmt.Errorf("%w: checksum %08x, the trailer says %08x", errCorruptSegment, s.crc.sum, want)
		}
		return false
	}
	if err != nil {
		s.err = fmt.Errorf("%w: entry %d: %v", errCorruptSegment, s.n, err)
		return false
	}
	s.prev, s.key = s.key, s.prev
	if s.key, err = readBytes(s.r, h>>1, s.key); err != nil {
		s.err = fmt.Errorf("%w: entry %d: key: %v", errCorruptSegment, s.n, err)
		return false
	}
	s.op, s.val = opDelete, s.val[:0]
	if h&1 == 0 {
		s.op = opPut
		vlen, err := binary.ReadUvarint(s.r)
		if err == nil {
			s.val, err = readBytes(s.r, vlen, s.val)
		}
		if err != nil {
			s.err = fmt.Errorf("%w: entry %d: value: %v", errCorruptSegment, s.n, err)
			return false
		}
	}
	if s.sorted && s.n > 0 && bytes.Compare(s.prev, s.key) >= 0 {
		s.err = fmt.Errorf("%w: entry %d: keys out of order", errCorruptSegment, s.n)
		return false
	}
	s.n++
	return true
}

type crcReader struct {
	r   io.Reader
	sum uint32
}

func (c *crcReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.sum = crc32.Update(c.sum, castagnoli, p[:n])
	return n, err
}

// readBytes reads n bytes into buf's memory; n is bounded by what is left
// of the segment only through the reads failing, so it is capped first.
func readBytes(r *bufio.Reader, n uint64, buf []byte) ([]byte, error) {
	if n > 1<<30 {
		return buf, fmt.Errorf("length %d", n)
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return buf, err
	}
	return buf, nil
}
