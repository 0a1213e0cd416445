package pebblestate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/onceflow/onceflow/checkpoint"
)

// record updates the chain after an upload of pl: which objects later
// snapshots may reuse, the new base if pl materialized one and succeeded,
// and the local copies (for local recovery). A savepoint changes nothing:
// its objects are never reused.
func (b *backend) record(pl *plan, metaName string, selfContained, ok bool) {
	if selfContained {
		return
	}
	b.cmu.Lock()
	c := &b.chain
	if ok || c.reusable == nil {
		// After success: exactly what this snapshot referenced; after a
		// failure: the previous set plus what this upload created.
		c.reusable = map[string]bool{}
	}
	var dropped []string // local files no longer needed
	keep := map[string]bool{}
	if metaName != "" {
		keep[metaName] = true
	}
	adopt := func(f *chainFile) {
		if f.h.Name == "" {
			return
		}
		c.reusable[f.h.Name] = true
		keep[f.h.Name] = true
		obj := b.dir.objPath(f.h.Name)
		if f.local != obj {
			if err := linkOrCopy(f.local, obj); err == nil {
				if strings.HasPrefix(f.local, b.dir.seg+string(filepath.Separator)) {
					dropped = append(dropped, f.local)
				}
				f.local = obj
			}
		}
	}
	for i := range pl.base {
		adopt(&pl.base[i])
		if f := pl.base[i]; immutable(f.name) && f.h.Name != "" {
			if c.sstHandles == nil {
				c.sstHandles = map[string]checkpoint.Handle{}
			}
			c.sstHandles[f.name] = f.h
		}
	}
	for i := range pl.segs {
		adopt(&pl.segs[i].file)
	}
	// Carry handles and local paths into the chain.
	bySeg := map[string]chainFile{}
	for _, s := range pl.segs {
		bySeg[s.file.obj] = s.file
	}
	for i := range c.segs {
		if f, found := bySeg[c.segs[i].file.obj]; found && f.h.Name != "" {
			c.segs[i].file = f
		}
	}
	if pl.materialized && ok {
		c.baseID, c.base = pl.baseID, pl.base
		n := 0
		for n < len(c.segs) && c.segs[n].id <= pl.id {
			if !strings.HasPrefix(c.segs[n].file.local, b.dir.objects) {
				dropped = append(dropped, c.segs[n].file.local)
			}
			n++
		}
		c.segs = append([]chainSeg(nil), c.segs[n:]...)
	} else if !pl.materialized {
		byName := map[string]chainFile{}
		for _, f := range pl.base {
			byName[f.name] = f
		}
		for i := range c.base {
			if f, found := byName[c.base[i].name]; found && f.h.Name != "" {
				c.base[i] = f
			}
		}
	}
	if ok {
		for name := range c.sstHandles {
			if !c.reusable[c.sstHandles[name].Name] {
				delete(c.sstHandles, name)
			}
		}
		c.keep[0], c.keep[1] = c.keep[1], keep
	}
	// Local copies to keep: the last two successful snapshots and
	// whatever the chain still points at.
	live := map[string]bool{}
	for _, k := range c.keep {
		for name := range k {
			live[b.dir.objPath(name)] = true
		}
	}
	for _, f := range c.base {
		live[f.local] = true
	}
	for _, s := range c.segs {
		live[s.file.local] = true
	}
	b.cmu.Unlock()

	for _, p := range dropped {
		if !live[p] {
			os.Remove(p)
		}
	}
	if ok {
		b.pruneObjects(live)
	}
}

// pruneObjects deletes local object copies nothing needs any more. It runs
// under upMu, and only uploads and restores write there.
func (b *backend) pruneObjects(live map[string]bool) {
	ents, err := os.ReadDir(b.dir.objects)
	if err != nil {
		return
	}
	for _, e := range ents {
		if p := filepath.Join(b.dir.objects, e.Name()); !live[p] {
			os.Remove(p)
		}
	}
}

// objPath is where the local copy of object name lives. Object names use
// A-Z a-z 0-9 . _ - and '/', which becomes '+'.
func (l layout) objPath(name string) string {
	return filepath.Join(l.objects, strings.ReplaceAll(name, "/", "+"))
}

// linkOrCopy makes dst the same content as src: a hard link when possible
// (Pebble never modifies an SST), a copy otherwise.
func linkOrCopy(src, dst string) error {
	if _, err := os.Stat(dst); err == nil {
		return nil
	}
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return writeFileAtomic(dst, data)
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so that a crash never leaves a partial file under the final name.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

var errNoMeta = errors.New("the checkpoint holds keyed state that was not written by the Pebble state backend (was it taken with another backend?)")
