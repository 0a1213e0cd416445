package pebblestate

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// snapshot is the asynchronous part of one snapshot.
type snapshot struct {
	b *backend
	p *pendingApply
}

var errClosed = errors.New("pebblestate: backend closed")

// plan is the content of one snapshot: a base and the segments after it.
type plan struct {
	id           uint64
	baseID       uint64
	base         []chainFile
	segs         []chainSeg
	materialized bool
}

// Upload writes the snapshot's changes to Pebble (unless the record path
// already did), then uploads what the store does not have yet and the
// description of the snapshot, last.
func (s *snapshot) Upload(ctx context.Context, to state.Uploader) ([]checkpoint.Handle, error) {
	b, p := s.b, s.p
	b.upMu.Lock()
	defer b.upMu.Unlock()
	if b.closed {
		return nil, errClosed
	}
	if p.seq <= b.lastUploadSeq.Load() {
		return nil, fmt.Errorf("checkpoint %d: a later snapshot of this subtask was uploaded first", p.id)
	}
	defer b.lastUploadSeq.Store(p.seq)
	if err := b.applyThrough(p.seq); err != nil {
		return nil, err
	}
	if p.ckptDir != "" {
		defer os.RemoveAll(p.ckptDir)
	}
	pl, err := b.plan(p)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: %w", p.id, err)
	}
	hs, selfContained, err := b.uploadPlan(ctx, to, pl)
	metaName := ""
	if err == nil {
		metaName = hs[len(hs)-1].Name
	}
	b.record(pl, metaName, selfContained, err == nil)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %d: upload keyed state of %s/%d: %w", p.id, b.info.Operator, b.info.Subtask, err)
	}
	return hs, nil
}

// plan lists the files of the snapshot of p.
func (b *backend) plan(p *pendingApply) (*plan, error) {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	c := &b.chain
	pl := &plan{id: p.id}
	if p.ckptDir != "" {
		ents, err := os.ReadDir(p.ckptDir)
		if err != nil {
			return nil, fmt.Errorf("list pebble checkpoint: %w", err)
		}
		pl.baseID, pl.materialized = p.id, true
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, fmt.Errorf("list pebble checkpoint: %w", err)
			}
			f := chainFile{name: e.Name(), obj: "b-" + e.Name(), local: filepath.Join(p.ckptDir, e.Name()), size: info.Size()}
			if isEmptyWAL(f) {
				continue // see isEmptyWAL
			}
			if h, ok := c.sstHandles[f.name]; ok && immutable(f.name) && h.Size == f.size && c.reusable[h.Name] {
				f.h = h
			}
			pl.base = append(pl.base, f)
		}
		return pl, nil
	}
	if c.base == nil {
		return nil, errors.New("no base to build on yet (an earlier materialization failed; a later checkpoint retries it)")
	}
	pl.baseID = c.baseID
	for _, f := range c.base {
		if !c.reusable[f.h.Name] {
			f.h = checkpoint.Handle{}
		}
		pl.base = append(pl.base, f)
	}
	for _, s := range c.segs {
		if s.id > p.id {
			break
		}
		if !c.reusable[s.file.h.Name] {
			s.file.h = checkpoint.Handle{}
		}
		pl.segs = append(pl.segs, s)
	}
	return pl, nil
}

// uploadPlan uploads every file of pl without a reusable handle, then the
// description. The first upload tells whether the snapshot is a savepoint
// (its objects are not checkpoint data): then every file is uploaded, so
// that the savepoint depends on no checkpoint.
func (b *backend) uploadPlan(ctx context.Context, to state.Uploader, pl *plan) (hs []checkpoint.Handle, selfContained bool, err error) {
	var todo []*chainFile
	for i := range pl.segs {
		if pl.segs[i].file.h.Name == "" {
			todo = append(todo, &pl.segs[i].file)
		}
	}
	for i := range pl.base {
		if pl.base[i].h.Name == "" {
			todo = append(todo, &pl.base[i])
		}
	}
	if len(todo) == 0 {
		return nil, false, errors.New("nothing new to upload (internal error: a snapshot always has a new segment or MANIFEST)")
	}
	if err := b.uploadFile(ctx, to, todo[0]); err != nil {
		return nil, false, err
	}
	if _, ok := checkpoint.ParseDataID(b.info.Job, todo[0].h.Name); !ok {
		selfContained = true
		todo = todo[:1]
		for i := range pl.segs {
			if f := &pl.segs[i].file; f != todo[0] {
				todo = append(todo, f)
			}
		}
		for i := range pl.base {
			if f := &pl.base[i]; f != todo[0] {
				todo = append(todo, f)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(b.opts.TransferConcurrency)
	for _, f := range todo[1:] {
		g.Go(func() error { return b.uploadFile(gctx, to, f) })
	}
	if err := g.Wait(); err != nil {
		return nil, selfContained, err
	}

	m := &snapMeta{
		CheckpointID: pl.id, KeyGroups: b.info.KeyGroups, MaxParallelism: b.info.MaxParallelism,
		States: b.stateDecls(), BaseID: pl.baseID,
	}
	for _, f := range pl.base {
		m.Base = append(m.Base, fileRef{Name: f.name, H: f.h})
	}
	for _, s := range pl.segs {
		m.Segments = append(m.Segments, segRef{ID: s.id, H: s.file.h})
	}
	data := m.encode()
	mh, err := to.Upload(ctx, metaSuffix, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, selfContained, fmt.Errorf("upload %s: %w", metaSuffix, err)
	}
	if !selfContained {
		// A local copy, so that local recovery needs no download at all.
		_ = writeFileAtomic(b.dir.objPath(mh.Name), data)
	}
	hs = append(m.handles(), mh)
	for i := range hs {
		hs[i].KeyGroups = b.info.KeyGroups
	}
	return hs, selfContained, nil
}

func (b *backend) uploadFile(ctx context.Context, to state.Uploader, f *chainFile) error {
	r, err := os.Open(f.local)
	if err != nil {
		return fmt.Errorf("open local copy of %s: %w", f.obj, err)
	}
	defer r.Close()
	h, err := to.Upload(ctx, f.obj, r, f.size)
	if err != nil {
		return err
	}
	if h.Size != f.size {
		return fmt.Errorf("upload %s: %d bytes read, the file has %d (changed while uploading?)", h.Name, h.Size, f.size)
	}
	f.h = h
	return nil
}

func (b *backend) stateDecls() []stateDecl {
	b.cmu.Lock()
	defer b.cmu.Unlock()
	return append([]stateDecl(nil), b.decls...)
}
