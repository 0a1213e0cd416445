package pebblestate

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/sstable/block"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Pebble ingests tables: the write cache's changes (ingest.go), and at
// restore the changelog segments after the base (segment.go), merged so
// that later changes win.

// markerKey was written at the end of SST segments, which an older version
// wrote: databases restored from them hold it. Its key group 0xffff is
// beyond any real one (the engine caps max parallelism at 32768), so it
// sorts after all state.
var markerKey = []byte{0xff, 0xff, 'o', 'n', 'c', 'e', 'f', 'l', 'o', 'w'}

// tableWriter writes one SST for ingestion: the write cache's changes, or
// restored segments. Keys must come in increasing order.
type tableWriter struct {
	path string
	w    *sstable.Writer
}

// createTable creates the SST at path. Tables are written in Pebble's
// row-based format, version 4, uncompressed: a table is written once and
// rewritten in the database's own format, compressed, by the compactions
// that follow; the columnar format costs twice as much to write (measured:
// 130 against 70 ms for 540k keys), and compressing a tenth more.
func (b *backend) createTable(path string) (*tableWriter, error) {
	f, err := vfs.Default.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return nil, fmt.Errorf("create table: %w", err)
	}
	fmv := b.db.FormatMajorVersion()
	format := min(max(sstable.TableFormatPebblev4, fmv.MinTableFormat()), fmv.MaxTableFormat())
	wo := sstable.WriterOptions{TableFormat: format, Compression: block.NoCompression}
	if b.opts.BloomBitsPerKey > 0 {
		// Ingested tables sit in L0 until compacted: a filter lets point
		// reads skip them.
		wo.FilterPolicy = bloom.FilterPolicy(b.opts.BloomBitsPerKey)
	}
	return &tableWriter{path: path, w: sstable.NewWriter(objstorageprovider.NewFileWritable(f), wo)}, nil
}

func (t *tableWriter) add(op byte, k, v []byte) error {
	var err error
	if op == opDelete {
		err = t.w.Delete(k)
	} else {
		err = t.w.Set(k, v)
	}
	if err != nil {
		return fmt.Errorf("write table %s: %w", t.path, err)
	}
	return nil
}

func (t *tableWriter) close() error {
	if err := t.w.Close(); err != nil {
		os.Remove(t.path)
		return fmt.Errorf("close table %s: %w", t.path, err)
	}
	return nil
}

// abandon removes a table that will never be complete.
func (t *tableWriter) abandon() {
	t.w.Close()
	os.Remove(t.path)
}

// ingestSegments adds the segments at paths, oldest first, to db. Each
// stretch of log segments is merged into one table, newest value winning
// (mergeRuns, after sorting the unsorted ones), so that a restore writes
// every key once however many segments changed it: replaying them one
// table each wrote every change and stacked one L0 sublevel per segment,
// and that, not the reading, was what a longer changelog cost a restore.
// SST segments, written by an older version, are ingested as they are,
// through a hard link. The paths stay: they are the verified local copies,
// and Pebble moves what it ingests.
func (b *backend) ingestSegments(db *pebble.DB, paths []string, scratchDir string) error {
	var logs []string
	for _, p := range paths {
		isLog, err := isLogSegment(p)
		if err != nil {
			return fmt.Errorf("ingest changelog segment %s: %w", p, err)
		}
		if isLog {
			logs = append(logs, p)
			continue
		}
		if err := b.ingestMerged(db, logs, scratchDir); err != nil {
			return err
		}
		logs = logs[:0]
		table := filepath.Join(scratchDir, "ingest-"+filepath.Base(p)+".sst")
		os.Remove(table)
		if err := linkOrCopy(p, table); err != nil {
			return fmt.Errorf("ingest changelog segment %s: %w", p, err)
		}
		if err := db.Ingest(context.Background(), []string{table}); err != nil {
			os.Remove(table)
			return fmt.Errorf("ingest changelog segment %s: %w", p, err)
		}
	}
	return b.ingestMerged(db, logs, scratchDir)
}

// ingestMerged merges the log segments at paths into one table and
// ingests it. Unsorted segments are sorted first, each into a sorted copy
// in scratchDir: one segment's entries in memory at a time.
func (b *backend) ingestMerged(db *pebble.DB, paths []string, scratchDir string) error {
	if len(paths) == 0 {
		return nil
	}
	what := fmt.Sprintf("changelog segments %s to %s", filepath.Base(paths[0]), filepath.Base(paths[len(paths)-1]))
	runs := make([]*os.File, 0, len(paths))
	defer func() {
		for _, f := range runs {
			f.Close()
		}
	}()
	var s sorter
	for _, p := range paths {
		f, err := b.sortedSegment(&s, p, scratchDir)
		if err != nil {
			return fmt.Errorf("ingest changelog segment %s: %w", p, err)
		}
		runs = append(runs, f)
	}
	table := filepath.Join(scratchDir, "ingest-"+filepath.Base(paths[len(paths)-1])+".sst")
	os.Remove(table)
	merge := func(add func(op byte, k, v []byte) error) (int, error) { return mergeRuns(runs, add) }
	if _, err := b.ingestTable(db, table, merge); err != nil {
		return fmt.Errorf("ingest %s: %w", what, err)
	}
	return nil
}

// ingestTable writes the entries fill adds, in key order, as a table at
// path and ingests it into db (which moves the file in); it returns how
// many fill added. No table is ingested when fill added none (intervals
// without changes).
func (b *backend) ingestTable(db *pebble.DB, path string, fill func(add func(op byte, k, v []byte) error) (int, error)) (int, error) {
	w, err := b.createTable(path)
	if err != nil {
		return 0, err
	}
	n, err := fill(w.add)
	if err != nil || n == 0 {
		w.abandon()
		return 0, err
	}
	if err := w.close(); err != nil {
		return 0, err
	}
	if err := db.Ingest(context.Background(), []string{path}); err != nil {
		os.Remove(path)
		return 0, fmt.Errorf("ingest %s: %w", path, err)
	}
	return n, nil
}

// sortedSegment opens the log segment at path if it is sorted, or else
// sorts it into a sorted copy in scratchDir, with s, and opens that (which
// is removed: the open file stays readable).
func (b *backend) sortedSegment(s *sorter, path, scratchDir string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := openSegment(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if r.sorted {
		return f, nil
	}
	defer f.Close()
	s.start(0)
	for r.next() {
		add(s, r.key, r.val, r.op == opDelete)
	}
	if r.err != nil {
		return nil, r.err
	}
	sorted := filepath.Join(scratchDir, "sorted-"+filepath.Base(path))
	if _, err := writeSortedSegment(sorted, s.sorted()); err != nil {
		return nil, err
	}
	defer os.Remove(sorted)
	return os.Open(sorted)
}

// writeSortedSegment writes sorted records as a sorted changelog segment at
// path and returns its size.
func writeSortedSegment(path string, r records) (int64, error) {
	seg, err := createSegment(path, true)
	if err != nil {
		return 0, err
	}
	r.each(func(op byte, k, v []byte) error { seg.add(op, k, v); return nil })
	return seg.close()
}

// isLogSegment tells a log segment (segment.go) from an SST one.
func isLogSegment(path string) (bool, error) {
	for _, magic := range [][]byte{segMagicUnsorted, segMagicSorted} {
		if ok, err := hasPrefix(path, magic); ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func hasPrefix(path string, prefix []byte) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	head := make([]byte, len(prefix))
	if _, err := io.ReadFull(f, head); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return false, nil
		}
		return false, err
	}
	return bytes.Equal(head, prefix), nil
}
