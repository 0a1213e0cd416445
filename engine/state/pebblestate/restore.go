package pebblestate

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sync/errgroup"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// batchBytes bounds the batches a rescaling restore writes: big enough to
// amortize a commit, small enough that Pebble inserts them into its memtable
// (a batch near half the memtable becomes a "flushable batch").
const batchBytes = 512 << 10

// source is the snapshot of one subtask of the restored checkpoint.
type source struct {
	m *snapMeta
}

// restore rebuilds the database from the handles of a checkpoint: the
// snapshot descriptions say which objects form each old subtask's base and
// changelog.
func (b *backend) restore(ctx context.Context, handles []checkpoint.Handle, from state.Downloader) error {
	present := map[string]checkpoint.Handle{}
	var metas []checkpoint.Handle
	for _, h := range handles {
		present[h.Name] = h
		if strings.HasSuffix(h.Name, metaSuffix) {
			metas = append(metas, h)
		}
	}
	if len(metas) == 0 {
		return errNoMeta
	}
	var sources []source
	for _, mh := range metas {
		path, err := b.fetch(ctx, from, mh)
		if err != nil {
			return fmt.Errorf("snapshot description %s: %w", mh.Name, err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("snapshot description %s: %w", mh.Name, err)
		}
		m, err := decodeMeta(data)
		if err != nil {
			return fmt.Errorf("snapshot description %s: %w", mh.Name, err)
		}
		if m.MaxParallelism != b.info.MaxParallelism {
			return fmt.Errorf("checkpoint %d: state written with max parallelism %d, the job has %d", m.CheckpointID, m.MaxParallelism, b.info.MaxParallelism)
		}
		// Every object the description names must be in the manifest:
		// otherwise garbage collection does not protect it.
		for _, h := range m.handles() {
			if p, ok := present[h.Name]; !ok || p.Size != h.Size || p.CRC32C != h.CRC32C {
				return fmt.Errorf("checkpoint %d: snapshot description %s references object %s, which the checkpoint's manifest does not (or with another size or checksum)", m.CheckpointID, mh.Name, h.Name)
			}
		}
		if !m.KeyGroups.Intersects(b.info.KeyGroups) {
			continue
		}
		for _, d := range m.States {
			if err := b.declare(d); err != nil {
				return fmt.Errorf("checkpoint %d: %w", m.CheckpointID, err)
			}
		}
		sources = append(sources, source{m: m})
	}
	if len(sources) == 0 {
		// No state in our key groups (possible after scaling out far).
		db, err := pebble.Open(b.dir.db, b.opts.pebbleOptions(b.blockCache))
		if err != nil {
			return fmt.Errorf("open pebble: %w", err)
		}
		b.db = db
		return nil
	}
	if len(sources) == 1 && sources[0].m.KeyGroups == b.info.KeyGroups {
		return b.restoreExact(ctx, from, sources[0].m)
	}
	return b.restoreRescaled(ctx, from, sources)
}

// declare records a state the checkpoint holds, refusing a kind conflict.
func (b *backend) declare(d stateDecl) error {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	for _, o := range b.decls {
		if o.Name == d.Name {
			if o.Kind != d.Kind {
				return fmt.Errorf("state %q is stored as %s state by one subtask and %s by another", d.Name, o.Kind, d.Kind)
			}
			return nil
		}
	}
	b.decls = append(b.decls, d)
	return nil
}

// restoreExact opens the restored base itself as the live database and
// replays the changelog: the next snapshots reuse its objects.
func (b *backend) restoreExact(ctx context.Context, from state.Downloader, m *snapMeta) error {
	base, segs, err := b.build(ctx, from, m, b.dir.db)
	if err != nil {
		return err
	}
	b.cmu.Lock()
	defer b.cmu.Unlock()
	c := &b.chain
	c.baseID, c.base, c.segs = m.BaseID, base, segs
	c.reusable, c.sstHandles = map[string]bool{}, map[string]checkpoint.Handle{}
	keep := map[string]bool{}
	add := func(f chainFile) {
		keep[f.h.Name] = true
		// Only this job's checkpoint data may be shared (never savepoint
		// objects: the user may delete a savepoint).
		if _, ok := checkpoint.ParseDataID(b.info.Job, f.h.Name); ok {
			c.reusable[f.h.Name] = true
			if immutable(f.name) {
				c.sstHandles[f.name] = f.h
			}
		}
	}
	for _, f := range base {
		add(f)
	}
	for _, s := range segs {
		add(s.file)
	}
	c.keep[1] = keep
	return nil
}

// restoreRescaled builds the database from the old subtasks whose key groups
// overlap ours: the one with the largest overlap is opened in place and
// clipped to our key groups, the others' entries in our key groups are
// copied in. The next snapshot materializes a new base.
func (b *backend) restoreRescaled(ctx context.Context, from state.Downloader, sources []source) error {
	my := b.info.KeyGroups
	overlap := func(r checkpoint.KeyGroupRange) int { return min(r.End, my.End) - max(r.Start, my.Start) }
	primary := 0
	for i, s := range sources {
		if overlap(s.m.KeyGroups) > overlap(sources[primary].m.KeyGroups) {
			primary = i
		}
	}
	if _, _, err := b.build(ctx, from, sources[primary].m, b.dir.db); err != nil {
		return err
	}
	lo, hi := keyGroupStart(my.Start), keyGroupStart(my.End)
	if err := b.db.DeleteRange(keyGroupStart(0), lo, pebble.NoSync); err != nil {
		return fmt.Errorf("drop key groups below %d: %w", my.Start, err)
	}
	if err := b.db.DeleteRange(hi, []byte{0xff, 0xff, 0xff}, pebble.NoSync); err != nil {
		return fmt.Errorf("drop key groups from %d: %w", my.End, err)
	}
	for i, s := range sources {
		if i == primary {
			continue
		}
		if err := b.copyFrom(ctx, from, s.m, i); err != nil {
			return err
		}
	}
	b.cmu.Lock()
	b.chain = chainState{} // no base: the next snapshot materializes
	b.cmu.Unlock()
	return nil
}

// copyFrom restores an old subtask's snapshot in a scratch directory and
// copies the entries of our key groups into the live database.
func (b *backend) copyFrom(ctx context.Context, from state.Downloader, m *snapMeta, i int) error {
	dir := filepath.Join(b.dir.root, fmt.Sprintf("rescale-%d", i))
	live := b.db
	b.db = nil
	defer func() {
		if b.db != nil {
			b.db.Close()
		}
		b.db = live
		os.RemoveAll(dir)
	}()
	if _, _, err := b.build(ctx, from, m, dir); err != nil {
		return err
	}
	my := b.info.KeyGroups
	lo := keyGroupStart(max(my.Start, m.KeyGroups.Start))
	hi := keyGroupStart(min(my.End, m.KeyGroups.End))
	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("checkpoint %d: read key groups %v: %w", m.CheckpointID, m.KeyGroups, err)
	}
	defer it.Close()
	batch := live.NewBatch()
	defer func() { batch.Close() }()
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("checkpoint %d: read key groups %v: %w", m.CheckpointID, m.KeyGroups, err)
		}
		if err := batch.Set(it.Key(), v, nil); err != nil {
			return fmt.Errorf("copy key groups: %w", err)
		}
		if batch.Len() >= batchBytes {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("copy key groups: %w", err)
			}
			batch.Close()
			batch = live.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("checkpoint %d: read key groups %v: %w", m.CheckpointID, m.KeyGroups, err)
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("copy key groups: %w", err)
	}
	return nil
}

// build fetches the files of m, lays the base out in dir, opens it as b.db
// and replays the changelog.
func (b *backend) build(ctx context.Context, from state.Downloader, m *snapMeta, dir string) ([]chainFile, []chainSeg, error) {
	base := make([]chainFile, len(m.Base))
	segs := make([]chainSeg, len(m.Segments))
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.TransferConcurrency)
	for i, f := range m.Base {
		g.Go(func() error {
			p, err := b.fetch(gctx, from, f.H)
			if err != nil {
				return fmt.Errorf("checkpoint %d: base file %s: %w", m.CheckpointID, f.Name, err)
			}
			base[i] = chainFile{name: f.Name, obj: "b-" + f.Name, local: p, size: f.H.Size, h: f.H}
			return nil
		})
	}
	for i, s := range m.Segments {
		g.Go(func() error {
			p, err := b.fetch(gctx, from, s.H)
			if err != nil {
				return fmt.Errorf("checkpoint %d: changelog segment of checkpoint %d: %w", m.CheckpointID, s.ID, err)
			}
			segs[i] = chainSeg{id: s.ID, file: chainFile{obj: segObjName(s.ID, i), local: p, size: s.H.Size, h: s.H}}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("create %s: %w", dir, err)
	}
	for _, f := range base {
		if isEmptyWAL(f) {
			continue // older snapshots may list them
		}
		dst := filepath.Join(dir, f.name)
		var err error
		if immutable(f.name) {
			err = linkOrCopy(f.local, dst)
		} else {
			// Pebble appends to its MANIFEST: never share that inode
			// with the verified copy.
			err = copyFile(f.local, dst)
		}
		if err != nil {
			return nil, nil, fmt.Errorf("checkpoint %d: lay out base file %s: %w", m.CheckpointID, f.name, err)
		}
	}
	t1 := time.Now()
	db, err := pebble.Open(dir, b.opts.pebbleOptions(b.blockCache))
	if err != nil {
		return nil, nil, fmt.Errorf("checkpoint %d: open restored base (checkpoint %d): %w", m.CheckpointID, m.BaseID, err)
	}
	b.db = db
	t2 := time.Now()
	paths := make([]string, len(segs))
	for i, s := range segs {
		paths[i] = s.file.local
	}
	if err := b.ingestSegments(db, paths, dir); err != nil {
		return nil, nil, fmt.Errorf("checkpoint %d: %w", m.CheckpointID, err)
	}
	for _, s := range segs {
		b.count(&b.stats.Replayed, s.file.size)
	}
	statsMu.Lock()
	b.stats.FetchTime += t1.Sub(t0)
	b.stats.OpenTime += t2.Sub(t1)
	b.stats.IngestTime += time.Since(t2)
	statsMu.Unlock()
	return base, segs, nil
}

// fetch returns the path of a verified local copy of h: the one local
// recovery kept when it still matches size and checksum, or a download.
func (b *backend) fetch(ctx context.Context, from state.Downloader, h checkpoint.Handle) (string, error) {
	p := b.dir.objPath(h.Name)
	if !b.opts.DisableLocalRecovery && verifyLocal(p, h) == nil {
		b.count(&b.stats.LocalBytes, h.Size)
		return p, nil
	}
	rc, err := from.Open(ctx, h)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	tmp := p + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", h.Name, err)
	}
	n, err := io.Copy(f, rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != h.Size {
		err = fmt.Errorf("%d bytes, the manifest says %d", n, h.Size)
	}
	if err == nil {
		err = os.Rename(tmp, p)
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("download %s: %w", h.Name, err)
	}
	b.count(&b.stats.Downloaded, h.Size)
	return p, nil
}

var statsMu sync.Mutex

func (b *backend) count(c *int64, n int64) {
	statsMu.Lock()
	*c += n
	statsMu.Unlock()
}

// verifyLocal checks a local copy against the handle: same size, same
// CRC32C. Local recovery never trusts a file it cannot verify.
func verifyLocal(path string, h checkpoint.Handle) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	if info.Size() != h.Size {
		return fmt.Errorf("%s: %d bytes, want %d", path, info.Size(), h.Size)
	}
	c := crc32.New(castagnoli)
	if _, err := io.Copy(c, f); err != nil {
		return err
	}
	if c.Sum32() != h.CRC32C {
		return fmt.Errorf("%s: checksum %08x, want %08x", path, c.Sum32(), h.CRC32C)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// isEmptyWAL reports whether f is one of the WAL files a Pebble checkpoint
// copies: with the WAL disabled they are empty. Laid out, they make Open
// replay them, which flushes an empty memtable, and Open then waited
// (measured: 2s at 5M keys) for the compaction that flush set off. Without
// them, Open returns at once and compactions run in the background.
func isEmptyWAL(f chainFile) bool { return strings.HasSuffix(f.name, ".log") && f.size == 0 }
