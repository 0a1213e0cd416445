package pebblestate

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onceflow/onceflow/engine/state"
)

// pendingApply is the part of a snapshot that must reach Pebble: the dirty
// generation frozen by the synchronous part and the changelog of the
// interval's spills. Whoever needs it in Pebble first applies it: the
// snapshot's asynchronous part normally, the record path if it must spill
// before that (writes must reach Pebble in interval order).
type pendingApply struct {
	seq, id     uint64
	frozen      *cacheMap
	seg         *segmentWriter // spills of the interval, or nil
	materialize bool

	// Set by apply, under wmu.
	applied bool
	segPath string
	segSize int64
	ckptDir string // the Pebble checkpoint, if materialize
	err     error
}

// Snapshot is the synchronous part: it freezes the dirty generation and
// queues it for the asynchronous part. O(1) whatever the state size.
func (b *backend) Snapshot(id uint64) (state.PendingSnapshot, error) {
	if p := b.broken.Load(); p != nil {
		return nil, *p
	}
	b.observe()
	b.seq++
	p := &pendingApply{seq: b.seq, id: id, frozen: b.dirty, seg: b.spill}
	if b.wantMaterialize() {
		p.materialize = true
		b.matSeq.Store(p.seq)
	}
	b.spill = nil
	b.dirty = newCacheMap()
	b.frozen = append(b.frozen, p)
	b.qmu.Lock()
	b.queue = append(b.queue, p)
	b.qmu.Unlock()
	return &snapshot{b: b, p: p}, nil
}

// wantMaterialize decides whether this snapshot rewrites the base: when
// there is none, or the changelog since the base grew past its bounds. Not
// while an earlier request is still unanswered.
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
	segBytes += b.dirty.bytes / 2 // a rough guess of this interval's changelog
	return float64(segBytes) > b.opts.MaterializeRatio*float64(baseBytes) ||
		len(c.segs)+1 >= b.opts.MaxChangelogSegments
}

// applyThrough applies every queued generation up to seq.
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
		if p.err != nil {
			return b.fail(fmt.Errorf("write checkpoint %d's changes to the local database: %w", p.id, p.err))
		}
		b.applied.Store(p.seq)
	}
}

// apply writes p's generation to Pebble and to its changelog segment, and
// takes the Pebble checkpoint of a materialization: nothing of a later
// interval is in Pebble yet, so the checkpoint is exactly p's state.
func (b *backend) apply(p *pendingApply) error {
	seg := p.seg
	if seg == nil {
		var err error
		if seg, err = createSegment(b.dir.segPath(p.seq)); err != nil {
			return err
		}
	}
	if err := b.writeGeneration(p.frozen, seg); err != nil {
		seg.abandon()
		return err
	}
	size, err := seg.close()
	if err != nil {
		return err
	}
	p.segPath, p.segSize = seg.f.Name(), size
	b.cmu.Lock()
	b.chain.segs = append(b.chain.segs, chainSeg{id: p.id, file: chainFile{obj: segObjName(p.id), local: p.segPath, size: size}})
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

// writeGeneration writes a cache generation to Pebble and to seg.
func (b *backend) writeGeneration(c *cacheMap, seg *segmentWriter) error {
	// Sorted, a batch goes into the memtable's skiplist with one search per
	// key instead of one per key and level: the sort pays for itself.
	keys := make([]string, 0, len(c.m))
	for k := range c.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	batch := b.db.NewBatch()
	defer func() { batch.Close() }()
	for _, k := range keys {
		e := c.m[k]
		kb := []byte(k)
		op := opPut
		var err error
		if e.del {
			op = opDelete
			err = batch.Delete(kb, nil)
		} else {
			err = batch.Set(kb, e.val, nil)
		}
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		if err := seg.add(op, kb, e.val); err != nil {
			return err
		}
		if batch.Len() >= batchBytes {
			if err := batch.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("commit batch: %w", err)
			}
			batch.Close()
			batch = b.db.NewBatch()
		}
	}
	if err := batch.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit batch: %w", err)
	}
	return nil
}

// spillDirty writes the dirty generation to Pebble on the record path,
// because it outgrew its share of the write cache. Earlier generations go
// first, so this may also do their work (rare: only when the asynchronous
// part has not got to them yet).
func (b *backend) spillDirty() error {
	b.wmu.Lock()
	err := b.applyLocked(math.MaxUint64)
	if err == nil && b.spill == nil {
		b.spill, err = createSegment(b.dir.spillPath(b.seq))
	}
	if err == nil {
		err = b.writeGeneration(b.dirty, b.spill)
	}
	b.wmu.Unlock()
	if err != nil {
		return b.fail(fmt.Errorf("spill the write cache to the local database: %w", err))
	}
	b.observe() // every frozen generation is in Pebble now
	spilled := b.dirty
	b.dirty = newCacheMap()
	b.addClean(spilled)
	return nil
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
	return filepath.Join(l.seg, fmt.Sprintf("%020d.log", seq))
}

// spillPath names the changelog of the interval after snapshot seq.
func (l layout) spillPath(seq uint64) string {
	return filepath.Join(l.seg, fmt.Sprintf("%020d-spill.log", seq+1))
}

func (l layout) ckptPath(id, seq uint64) string {
	return filepath.Join(l.ckpt, fmt.Sprintf("%020d-%d", id, seq))
}

// segObjName is the object name of the changelog of checkpoint id's interval.
func segObjName(id uint64) string { return fmt.Sprintf("seg-%d.log", id) }
