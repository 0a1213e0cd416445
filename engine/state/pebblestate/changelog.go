package pebblestate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// A changelog segment holds changes of one interval between two snapshots:
// epoch of the write cache (or one spill of it), sorted, as an SST of its own,
// with deletes as tombstones. The backend ingests it into Pebble (no
// memtable insert, no flush) and uploads the very same file; restore ingests
// the segments after the base, in order, so later changes win, with no
// record-by-record replay.
//
// Every segment ends with the marker key: it keeps a segment of an interval
// without changes non-empty (an SST needs a key; a snapshot needs a new
// object to upload first, see uploadPlan) and records in the database the
// last checkpoint applied. Its key group 0xffff is beyond any real one
// (the engine caps max parallelism at 32768).
var markerKey = []byte{0xff, 0xff, 'o', 'n', 'c', 'e', 'f', 'l', 'o', 'w'}

const (
	opPut    byte = 1
	opDelete byte = 2
)

// segmentWriter writes one segment SST; keys must come in increasing order.
type segmentWriter struct {
	path string
	w    *sstable.Writer
}

func (b *backend) createSegment(path string) (*segmentWriter, error) {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("create changelog segment: %w", err)
	}
	wo := sstable.WriterOptions{TableFormat: b.db.FormatMajorVersion().MaxTableFormat()}
	if b.opts.BloomBitsPerKey > 0 {
		// Segments sit in L0 until compacted: a filter lets point reads
		// skip them.
		wo.FilterPolicy = bloom.FilterPolicy(b.opts.BloomBitsPerKey)
	}
	return &segmentWriter{path: path, w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)}, nil
}

func (s *segmentWriter) add(op byte, k, v []byte) error {
	var err error
	if op == opDelete {
		err = s.w.Delete(k)
	} else {
		err = s.w.Set(k, v)
	}
	if err != nil {
		return fmt.Errorf("write changelog segment %s: %w", s.path, err)
	}
	return nil
}

// close finishes the file and returns its size.
func (s *segmentWriter) close() (int64, error) {
	if err := s.w.Close(); err != nil {
		os.Remove(s.path)
		return 0, fmt.Errorf("close changelog segment %s: %w", s.path, err)
	}
	info, err := os.Stat(s.path)
	if err != nil {
		return 0, fmt.Errorf("close changelog segment: %w", err)
	}
	return info.Size(), nil
}

// abandon removes a segment that will never be complete.
func (s *segmentWriter) abandon() {
	s.w.Close()
	os.Remove(s.path)
}

// ingestSegment adds the segment at path to db. Pebble moves what it
// ingests, so it gets a hard link and path stays (to be uploaded, or as the
// verified local copy).
func ingestSegment(db *pebble.DB, path, scratchDir string) error {
	link := filepath.Join(scratchDir, "ingest-"+filepath.Base(path))
	os.Remove(link)
	if err := linkOrCopy(path, link); err != nil {
		return fmt.Errorf("ingest changelog segment %s: %w", path, err)
	}
	if err := db.Ingest(context.Background(), []string{link}); err != nil {
		os.Remove(link)
		return fmt.Errorf("ingest changelog segment %s: %w", path, err)
	}
	return nil
}
