package pebblestate

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/engine/state"
)

// pendingApply is the part of a snapshot that must reach Pebble: the
// entries of the epoch the synchronous part closed, and the segments the
// record path spilled during it. Whoever needs it in Pebble first applies it: the
// snapshot's asynchronous part normally, the record path if it must spill
// before that (writes must reach Pebble in interval order).
type pendingApply struct {
	seq, id     uint64
	epoch       uint64
	gen         []*entry   // the epoch's entries; immutable until written
	genBytes    int64      // of those not waiting for ingestion already
	spills      []chainSeg // segments the record path spilled in the interval
	materialize bool
	ingest      bool // into Pebble, with the earlier unapplied epochs (ingest.go)

	// Set by apply, under wmu.
	applied bool
	ckptDir string // the Pebble checkpoint, if materialize
	err     error
}

// Snapshot is the synchronous part: it closes the current epoch and queues
// its entries for the asynchronous part. O(1) whatever the state size.
func (b *backend) Snapshot(id uint64) (state.PendingSnapshot, error) {
	if p := b.broken.Load(); p != nil {
		return nil, *p
	}
	b.observe()
	b.seq++
	p := &pendingApply{seq: b.seq, id: id, epoch: b.epoch, gen: b.dirty, genBytes: b.newBytes, spills: b.spills}
	if b.wantMaterialize() {
		p.materialize = true
		b.matSeq.Store(p.seq)
	}
	b.spills = nil
	b.epoch++
	b.frozen = append(b.frozen, p)
	b.frozenBytes += p.genBytes
	if p.ingest = b.wantIngest(p.materialize); p.ingest {
		b.holdHi = p.epoch
	}
	b.qmu.Lock()
	b.queue = append(b.queue, p)
	// Reuse an applied epoch's list: growing one from nil to hundreds of
	// thousands of entries every interval is a measurable share of the
	// record path.
	b.dirty, b.spare = b.spare, nil
	b.qmu.Unlock()
	b.dirtyBytes, b.newBytes = 0, 0
	return &snapshot{b: b, p: p}, nil
}

// wantMaterialize decides whether this snapshot rewrites the base: when
// there is none, or the changelog since the base grew past its bounds. Not
// while an earlier request is still unanswered.
//
// Materializing is costly in a way the changelog is not: random updates
// make Pebble's compactions rewrite most files (bench/state measures up to
// the whole state for 1% of keys changed at 5M keys), while the changelog
// costs what changed. So it happens only when the changelog, which restore
// must ingest, has grown to MaterializeRatio of the base.
func (b *backend) wantMaterialize() bool {
	if b.matSeq.Load() > b.lastUploadSeq.Load() {
		return false
	}
	b.cmu.Lock()
	defer b.cmu.Unlock()
	c := &b.chain
	if c.base == nil {
		return true
	}
	var baseBytes, segBytes int64
	for _, f := range c.base {
		baseBytes += f.size
	}
	for _, s := range c.segs {
		segBytes += s.file.size
	}
	// This interval's segment is not counted: its size is known only once
	// written, and cache bytes overestimate it tenfold (measured). The
	// decision lags one checkpoint behind instead.
	return float64(segBytes) > b.opts.MaterializeRatio*float64(baseBytes) ||
		len(c.segs)+1 >= b.opts.MaxChangelogSegments
}

// applyThrough applies every queued snapshot up to seq.
func (b *backend) applyThrough(seq uint64) error {
	b.wmu.Lock()
	defer b.wmu.Unlock()
	return b.applyLocked(seq)
}

func (b *backend) applyLocked(seq uint64) error {
	for {
		if p := b.broken.Load(); p != nil {
			return *p
		}
		b.qmu.Lock()
		if len(b.queue) == 0 || b.queue[0].seq > seq {
			b.qmu.Unlock()
			return nil
		}
		p := b.queue[0]
		b.queue = b.queue[1:]
		b.qmu.Unlock()
		p.err = b.apply(p)
		p.applied = true
		gen := p.gen
		p.gen = nil
		b.recycle(gen)
		if p.err != nil {
			return b.fail(fmt.Errorf("write checkpoint %d's changes to the local database: %w", p.id, p.err))
		}
	}
}

// recycle keeps a written epoch's list for the next epoch, emptied (it
// must not keep entries alive), unless a longer one is already kept.
func (b *backend) recycle(gen []*entry) {
	clear(gen)
	b.qmu.Lock()
	if cap(gen) > cap(b.spare) {
		b.spare = gen[:0]
	}
	b.qmu.Unlock()
}

// apply writes p's entries as a changelog segment, ingests the epochs
// waiting for it into Pebble if p asks for it, and takes the Pebble
// checkpoint of a materialization: nothing of a later interval is in Pebble
// yet, so the checkpoint is exactly p's state.
func (b *backend) apply(p *pendingApply) error {
	path := b.dir.segPath(p.seq)
	size, err := b.writeGeneration(p.gen, p.epoch, path)
	if err != nil {
		return err
	}
	if p.ingest {
		if err := b.ingest(p.epoch); err != nil {
			return err
		}
	}
	segs := append(p.spills, chainSeg{id: p.id, file: chainFile{obj: segObjName(p.id, len(p.spills)), local: path, size: size}})
	for i := range p.spills {
		segs[i].id = p.id
		segs[i].file.obj = segObjName(p.id, i)
	}
	b.cmu.Lock()
	b.chain.segs = append(b.chain.segs, segs...)
	b.cmu.Unlock()
	if !p.materialize {
		return nil
	}
	start := time.Now()
	// Without a WAL, a Pebble checkpoint leaves out the memtable: flush.
	if err := b.db.Flush(); err != nil {
		return fmt.Errorf("flush before checkpoint: %w", err)
	}
	dir := b.dir.ckptPath(p.id, p.seq)
	if err := b.db.Checkpoint(dir); err != nil {
		os.RemoveAll(dir)
		return fmt.Errorf("pebble checkpoint: %w", err)
	}
	p.ckptDir = dir
	b.opts.Logger.Debug("pebblestate: materialized", "operator", b.info.Operator, "subtask", b.info.Subtask, "checkpoint", p.id, "took", time.Since(start))
	return nil
}

// writeGeneration writes an epoch's entries as the changelog segment at
// path, in the order they are read in, and lists them for the ingestion
// that will need them. It returns the file's size. Under wmu.
func (b *backend) writeGeneration(gen []*entry, epoch uint64, path string) (int64, error) {
	encoded := b.sorter.encodeGen(gen, &b.unapplied)
	// The segment has their values now: the record path may update these
	// entries in place, unless an ingestion still needs them (held).
	b.markWritten(epoch)
	seg, err := createSegment(path, false)
	if err != nil {
		return 0, err
	}
	seg.addEncoded(encoded, uint64(len(gen)))
	return seg.close()
}

// spillDirty writes the current epoch's entries to Pebble on the record
// path, because they outgrew their share of the write cache. Earlier epochs
// go first, so this may also do their work (rare: only when the
// asynchronous part has not got to them yet).
func (b *backend) spillDirty() error {
	b.wmu.Lock()
	err := b.applyLocked(math.MaxUint64)
	var size int64
	path := b.dir.spillPath(b.seq, len(b.spills))
	if err == nil {
		size, err = b.writeGeneration(b.dirty, b.epoch, path)
		if err == nil {
			// Spilled entries must become evictable: that is the point.
			err = b.ingest(b.epoch)
		}
	}
	b.wmu.Unlock()
	if err != nil {
		return b.fail(fmt.Errorf("spill the write cache to the local database: %w", err))
	}
	b.spills = append(b.spills, chainSeg{file: chainFile{local: path, size: size}})
	// The spilled entries are clean now; later writes start a new epoch.
	b.epoch++
	clear(b.dirty)
	b.dirty = b.dirty[:0]
	b.dirtyBytes, b.newBytes = 0, 0
	b.observe()
	b.evict()
	return nil
}

// markWritten records that the entries of epochs up to e are copied for
// their segments: the record path may update them in place.
func (b *backend) markWritten(e uint64) { raise(&b.written, e) }

// markApplied records that every entry of epochs up to e is in Pebble: the
// record path may evict them.
func (b *backend) markApplied(e uint64) { raise(&b.applied, e) }

func raise(v *atomic.Uint64, e uint64) {
	for {
		a := v.Load()
		if a >= e || v.CompareAndSwap(a, e) {
			return
		}
	}
}

// layout is the local directory of one subtask.
type layout struct {
	root    string
	db      string // the live database
	ckpt    string // Pebble checkpoints of materializations, until uploaded
	seg     string // changelog segments, until uploaded
	objects string // verified copies of uploaded or downloaded objects
}

func newLayout(root string) layout {
	return layout{
		root: root, db: filepath.Join(root, "db"), ckpt: filepath.Join(root, "ckpt"),
		seg: filepath.Join(root, "seg"), objects: filepath.Join(root, "objects"),
	}
}

func (l layout) segPath(seq uint64) string {
	return filepath.Join(l.seg, fmt.Sprintf("%020d.seg", seq))
}

// spillPath names spill n of the interval after snapshot seq.
func (l layout) spillPath(seq uint64, n int) string {
	return filepath.Join(l.seg, fmt.Sprintf("%020d-spill-%d.seg", seq+1, n))
}

func (l layout) ckptPath(id, seq uint64) string {
	return filepath.Join(l.ckpt, fmt.Sprintf("%020d-%d", id, seq))
}

// segObjName is the object name of segment n of checkpoint id's interval.
func segObjName(id uint64, n int) string { return fmt.Sprintf("seg-%d-%d.log", id, n) }
