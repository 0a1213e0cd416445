package pebblestate

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cockroachdb/pebble/v2"
)

// A changelog segment holds every change of one interval between two
// snapshots, in the order Pebble received them:
//
//	"OFCLOG01" then records: [op: 1 byte][uvarint len][key][uvarint len][value]
//
// op is opPut or opDelete (a delete has an empty value). Replaying the
// segments after a base, in order, reproduces the state of the snapshot.
// Integrity is the checkpoint's business: the engine verifies size and
// CRC32C of every object against the manifest.

var changelogMagic = []byte("OFCLOG01")

const (
	opPut    byte = 1
	opDelete byte = 2
)

// segmentWriter appends records to a local segment file.
type segmentWriter struct {
	f    *os.File
	w    *bufio.Writer
	n    int64 // bytes written, magic included
	recs int64
	buf  []byte
}

func createSegment(path string) (*segmentWriter, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create changelog segment: %w", err)
	}
	s := &segmentWriter{f: f, w: bufio.NewWriterSize(f, 256<<10)}
	if _, err := s.w.Write(changelogMagic); err != nil {
		f.Close()
		return nil, fmt.Errorf("write changelog segment %s: %w", path, err)
	}
	s.n = int64(len(changelogMagic))
	return s, nil
}

func (s *segmentWriter) add(op byte, k, v []byte) error {
	s.buf = append(s.buf[:0], op)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(k)))
	s.buf = append(s.buf, k...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(v)))
	s.buf = append(s.buf, v...)
	n, err := s.w.Write(s.buf)
	s.n += int64(n)
	s.recs++
	if err != nil {
		return fmt.Errorf("write changelog segment %s: %w", s.f.Name(), err)
	}
	return nil
}

// close flushes and closes the file, returning its size.
func (s *segmentWriter) close() (int64, error) {
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("close changelog segment %s: %w", s.f.Name(), err)
	}
	return s.n, nil
}

// abandon closes and removes a segment that will never be complete.
func (s *segmentWriter) abandon() {
	s.f.Close()
	os.Remove(s.f.Name())
}

// replaySegment applies the segment at path to db, in batches.
func replaySegment(db *pebble.DB, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open changelog segment: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 256<<10)
	magic := make([]byte, len(changelogMagic))
	if _, err := io.ReadFull(r, magic); err != nil || !bytes.Equal(magic, changelogMagic) {
		return fmt.Errorf("changelog segment %s: not a changelog (bad magic)", path)
	}
	b := db.NewBatch()
	defer func() { b.Close() }()
	var off int64 = int64(len(changelogMagic))
	var k, v []byte
	for {
		op, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("changelog segment %s: read at byte %d: %w", path, off, err)
		}
		if k, err = readChunk(r, k); err == nil {
			v, err = readChunk(r, v)
		}
		if err != nil {
			return fmt.Errorf("changelog segment %s: record at byte %d: %w", path, off, err)
		}
		off += 1 + int64(uvarintLen(len(k))+len(k)+uvarintLen(len(v))+len(v))
		switch op {
		case opPut:
			err = b.Set(k, v, nil)
		case opDelete:
			err = b.Delete(k, nil)
		default:
			return fmt.Errorf("changelog segment %s: unknown operation %d at byte %d", path, op, off)
		}
		if err != nil {
			return fmt.Errorf("changelog segment %s: %w", path, err)
		}
		if b.Len() >= batchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("replay changelog segment %s: %w", path, err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("replay changelog segment %s: %w", path, err)
	}
	return nil
}

// batchBytes bounds the batches the backend writes: big enough to amortize
// a commit, small enough that Pebble inserts them into its memtable (a batch
// near half the memtable becomes a "flushable batch", much slower to read
// through).
const batchBytes = 512 << 10

// maxChunk bounds a key or value read from a changelog, so that a corrupt
// length cannot make replay allocate without limit.
const maxChunk = 1 << 30

var errChunkTooLarge = errors.New("length exceeds 1 GiB (corrupt)")

func readChunk(r *bufio.Reader, buf []byte) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, unexpected(err)
	}
	if n > maxChunk {
		return nil, errChunkTooLarge
	}
	if uint64(cap(buf)) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, unexpected(err)
	}
	return buf, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}
