// Package pebblestate is the keyed state backend on Pebble: one database per
// operator subtask under a local directory, behind a write-back cache, with
// incremental snapshots (a changelog per checkpoint, periodically
// materialized as Pebble files shared between checkpoints), restore with
// local recovery, and rescaling by key group. It is the only importer of
// Pebble; operators see only the state.Backend interface.
package pebblestate

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// New returns a state factory keeping each subtask's state in Pebble under
// o.Dir. Invalid options make every New of the factory fail (Validate them
// first to fail earlier).
func New(o Options) state.Factory { return &factory{opts: o} }

type factory struct{ opts Options }

func (f *factory) New(ctx context.Context, info state.SubtaskInfo, restore []checkpoint.Handle, from state.Downloader) (state.Backend, error) {
	if err := f.opts.Validate(); err != nil {
		return nil, err
	}
	if info.KeyGroups.Empty() || info.KeyGroups.Start < 0 || info.KeyGroups.End > info.MaxParallelism || info.MaxParallelism > 1<<15 {
		return nil, fmt.Errorf("pebblestate: %s/%d: key groups %v of max parallelism %d", info.Operator, info.Subtask, info.KeyGroups, info.MaxParallelism)
	}
	o := f.opts.withDefaults()
	root := filepath.Join(o.Dir, url.PathEscape(info.Job), url.PathEscape(info.Operator), strconv.Itoa(info.Subtask))
	b := &backend{
		opts: o, info: info, dir: newLayout(root),
		names: map[string]state.ID{}, tags: map[uint32]string{}, mapTags: map[uint32]bool{},
		cache: newEntryTable(), prefixes: map[string]map[string]struct{}{}, epoch: 1,
		spillLimit: max(0, o.WriteCacheSize/2),
	}
	if err := b.open(ctx, restore, from); err != nil {
		b.release()
		return nil, fmt.Errorf("pebblestate: %s/%d: %w", info.Operator, info.Subtask, err)
	}
	return b, nil
}

// open prepares the local directory and the database, restoring it from
// the handles when there are any.
func (b *backend) open(ctx context.Context, restore []checkpoint.Handle, from state.Downloader) error {
	if err := os.MkdirAll(b.dir.root, 0o755); err != nil {
		return fmt.Errorf("create local directory: %w", err)
	}
	lock, err := vfs.Default.Lock(filepath.Join(b.dir.root, "LOCK"))
	if err != nil {
		return fmt.Errorf("lock local directory %s (is another instance of this subtask running?): %w", b.dir.root, err)
	}
	b.lock = lock
	// What a previous instance left besides verified object copies is of
	// no use: its database may be ahead of any checkpoint.
	ents, err := os.ReadDir(b.dir.root)
	if err != nil {
		return fmt.Errorf("list local directory: %w", err)
	}
	for _, e := range ents {
		if e.IsDir() && e.Name() != "objects" {
			if err := os.RemoveAll(filepath.Join(b.dir.root, e.Name())); err != nil {
				return fmt.Errorf("clean local directory: %w", err)
			}
		}
	}
	for _, d := range []string{b.dir.ckpt, b.dir.seg, b.dir.objects} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create local directory: %w", err)
		}
	}
	b.blockCache = pebble.NewCache(b.opts.BlockCacheSize)
	if len(restore) == 0 {
		db, err := pebble.Open(b.dir.db, b.opts.pebbleOptions(b.blockCache))
		if err != nil {
			return fmt.Errorf("open pebble: %w", err)
		}
		b.db = db
		b.complete = true
		return nil
	}
	start := time.Now()
	if err := b.restore(ctx, restore, from); err != nil {
		return err
	}
	if err := b.warm(); err != nil {
		return err
	}
	statsMu.Lock()
	b.stats.RestoreTime = time.Since(start)
	statsMu.Unlock()
	return nil
}

// Close closes the database after any upload in progress has finished. The
// local directory stays, for local recovery.
func (b *backend) Close() error {
	b.upMu.Lock()
	defer b.upMu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.wmu.Lock()
	defer b.wmu.Unlock()
	b.qmu.Lock()
	b.queue = nil
	b.qmu.Unlock()
	b.unapplied = nil
	var err error
	if b.db != nil {
		if err = b.db.Close(); err != nil {
			err = fmt.Errorf("pebblestate: close %s/%d: %w", b.info.Operator, b.info.Subtask, err)
		}
		b.db = nil
	}
	b.release()
	return err
}

// release frees what open acquired besides the database.
func (b *backend) release() {
	if b.db != nil {
		b.db.Close()
		b.db = nil
	}
	if b.blockCache != nil {
		b.blockCache.Unref()
		b.blockCache = nil
	}
	if b.lock != nil {
		b.lock.Close()
		b.lock = nil
	}
}

// Stats describe a backend's restore and snapshots, for tests and
// benchmarks.
type Stats struct {
	// RestoreTime is how long New took to restore (zero for a fresh start).
	RestoreTime time.Duration
	// Downloaded and LocalBytes are the bytes of restored files fetched from
	// the store and found verified in the local directory.
	Downloaded, LocalBytes int64
	// Replayed is the number of changelog bytes ingested on restore.
	Replayed int64
	// FetchTime (verifying local copies, downloading), OpenTime (opening
	// the base) and IngestTime (the changelog) divide RestoreTime.
	FetchTime, OpenTime, IngestTime time.Duration
}

// StatsOf returns the stats of a backend made by this package.
func StatsOf(b state.Backend) (Stats, bool) {
	pb, ok := b.(*backend)
	if !ok {
		return Stats{}, false
	}
	statsMu.Lock()
	defer statsMu.Unlock()
	return pb.stats, true
}

var _ io.Closer = (*backend)(nil)
