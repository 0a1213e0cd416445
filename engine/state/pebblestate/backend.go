package pebblestate

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"

	"github.com/onceflow/onceflow/engine/state"
)

// backend is the state of one operator subtask: a Pebble database behind a
// write-back cache (cache.go).
//
// A snapshot's synchronous part only hands the entries written since the
// previous one (an epoch) to the asynchronous part, which writes them, as a
// changelog segment, to Pebble and to the store. Every write to Pebble goes
// through applyLocked or spillDirty under wmu, in epoch order, so that the
// database always holds a prefix of the history of changes: what snapshots
// rely on.
type backend struct {
	opts       Options
	info       state.SubtaskInfo
	dir        layout
	lock       io.Closer
	db         *pebble.DB
	blockCache *pebble.Cache

	// Registered states, by ID. Only the record path touches these after
	// New, except stateDecls (under cmu) which snapshots record.
	names   map[string]state.ID
	states  []stateInfo
	tags    map[uint32]string
	mapTags map[uint32]bool

	// Record path only.
	kg         int
	owned      bool
	key        []byte
	kbuf, vbuf []byte
	last       lastRead
	cache      *entryTable
	prefetch   prefetchBuffers
	prefixes   map[string]map[string]struct{} // map-state keys by (state, key) prefix
	cacheBytes int64
	// complete: the cache holds every key of the database (it was empty
	// or loaded whole when opened, and nothing was evicted since), so a
	// miss is an absent key and needs no Pebble read.
	complete     bool
	epoch        uint64   // current epoch
	writtenSeen  uint64   // newest written epoch the record path has seen
	appliedSeen  uint64   // newest applied epoch the record path has seen
	dirty        []*entry // entries written in the current epoch
	spare        []*entry // a written epoch's list, emptied, for reuse (under qmu)
	dirtyBytes   int64
	newBytes     int64           // of the current epoch's entries not waiting for ingestion already
	frozen       []*pendingApply // snapshots not yet seen applied, oldest first
	frozenBytes  int64           // their genBytes: the entries they hold out of Pebble
	holdHi       uint64          // newest epoch an ingestion was asked for (ingest.go)
	capturedSeen uint64          // newest epoch ingestions captured, as the record path saw it
	spills       []chainSeg      // segments spilled in this interval, oldest first
	seq          uint64          // of the last pendingApply created
	spillLimit   int64

	// Shared with the asynchronous part.
	written        atomic.Uint64 // newest epoch copied for its segment
	ingestCaptured atomic.Uint64 // newest epoch an ingestion copied
	applied        atomic.Uint64 // newest epoch whose entries are in Pebble
	broken         atomic.Pointer[error]
	qmu            sync.Mutex
	queue          []*pendingApply // created, not yet applied, oldest first
	wmu            sync.Mutex      // serializes writes to Pebble
	sorter         sorter          // under wmu
	unapplied      []*entry        // written, not yet ingested, in the order listed; under wmu
	cmu            sync.Mutex
	chain          chainState
	decls          []stateDecl // states as of the latest Register, for snapshots
	stats          Stats

	upMu          sync.Mutex // one upload at a time, in checkpoint order
	closed        bool
	lastUploadSeq atomic.Uint64
	matSeq        atomic.Uint64 // seq of the latest snapshot asked to materialize
}

type stateInfo struct {
	name string
	kind state.Kind
	tag  uint32
}

func (b *backend) Register(name string, kind state.Kind) (state.ID, error) {
	if id, ok := b.names[name]; ok {
		if b.states[id].kind != kind {
			return 0, fmt.Errorf("state %q registered as %s, now requested as %s", name, b.states[id].kind, kind)
		}
		return id, nil
	}
	if len(b.states) >= 1<<16-1 {
		return 0, fmt.Errorf("state %q: too many states", name)
	}
	tag := stateTag(name)
	if other, ok := b.tags[tag]; ok && other != name {
		return 0, fmt.Errorf("state %q: its on-disk tag collides with state %q; rename one of them", name, other)
	}
	b.cmu.Lock()
	defer b.cmu.Unlock()
	for _, d := range b.decls {
		if d.Name == name && d.Kind != kind {
			return 0, fmt.Errorf("state %q was stored as %s state, now requested as %s", name, d.Kind, kind)
		}
	}
	id := state.ID(len(b.states))
	b.names[name] = id
	b.tags[tag] = name
	b.states = append(b.states, stateInfo{name: name, kind: kind, tag: tag})
	if kind == state.KindMap {
		b.mapTags[tag] = true
	}
	if !hasDecl(b.decls, name) {
		b.decls = append(b.decls, stateDecl{Name: name, Kind: kind})
	}
	return id, nil
}

func hasDecl(decls []stateDecl, name string) bool {
	for _, d := range decls {
		if d.Name == name {
			return true
		}
	}
	return false
}

// Prefetch loads the cache slots of the keys' value and list states, then
// the entries they point at (map states' user keys are not known ahead).
// Each pass is a short loop of independent loads, so that the CPU has many
// of them in flight at once: one lookup after another would wait for each
// of its cache misses in turn.
func (b *backend) Prefetch(kgs []int, keys [][]byte) {
	pf := &b.prefetch
	slots := pf.slots[:0]
	for i, key := range keys {
		for j := range b.states {
			if st := &b.states[j]; st.kind != state.KindMap {
				pf.key = appendPrefix(pf.key[:0], kgs[i], st.tag, key)
				if s := b.cache.slotOf(pf.key); s != nil {
					slots = append(slots, s)
				}
			}
		}
	}
	var sum uint64
	for _, s := range slots {
		sum += s.h
	}
	for _, s := range slots {
		if e := s.e; e != nil {
			sum += e.epoch
		}
	}
	pf.sum += sum
	clear(slots) // the table may drop them
	pf.slots = slots
}

type prefetchBuffers struct {
	key   []byte
	slots []*tableSlot
	sum   uint64 // of what Prefetch loaded: used, so that the loads stay
}

func (b *backend) SetCurrentKey(kg int, key []byte) {
	b.kg, b.key = kg, key
	b.owned = b.info.KeyGroups.Contains(kg)
	b.last.e = nil
}

// lastRead remembers the entry the last Get returned, so that the Put that
// typically follows (read-modify-write: counters, reducing state) neither
// encodes the key nor looks it up again. Anything that may move or drop
// entries (a new current key, eviction) forgets it.
type lastRead struct {
	id      state.ID
	userKey []byte
	k       []byte // its encoded key
	prefix  int
	e       *entry // nil: nothing remembered
}

func (b *backend) remember(id state.ID, userKey, k []byte, prefix int, e *entry) {
	b.last = lastRead{id: id, userKey: append(b.last.userKey[:0], userKey...), k: append(b.last.k[:0], k...), prefix: prefix, e: e}
}

// check fails an access outside the subtask's key groups or after the
// backend broke.
func (b *backend) check() error {
	if p := b.broken.Load(); p != nil {
		return *p
	}
	if !b.owned {
		return fmt.Errorf("%s/%d: key %q is in key group %d, outside %v", b.info.Operator, b.info.Subtask, b.key, b.kg, b.info.KeyGroups)
	}
	return nil
}

// encode builds the Pebble key of (id, current key, userKey) in kbuf and
// returns it with the length of its map prefix (0 for non-map states).
func (b *backend) encode(id state.ID, userKey []byte) ([]byte, int, error) {
	if int(id) >= len(b.states) {
		return nil, 0, fmt.Errorf("unknown state id %d", id)
	}
	st := &b.states[id]
	b.kbuf = appendPrefix(b.kbuf[:0], b.kg, st.tag, b.key)
	prefix := 0
	if st.kind == state.KindMap {
		prefix = len(b.kbuf)
	}
	return append(b.kbuf, userKey...), prefix, nil
}

func (b *backend) Get(id state.ID, userKey []byte) ([]byte, bool, error) {
	if err := b.check(); err != nil {
		return nil, false, err
	}
	b.observe()
	k, prefix, err := b.encode(id, userKey)
	if err != nil {
		return nil, false, err
	}
	if e, ok := b.cacheGet(k); ok {
		b.remember(id, userKey, k, prefix, e)
		return e.val, !e.del, nil
	}
	if b.complete {
		b.last.e = nil
		return nil, false, nil
	}
	v, closer, err := b.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		b.evict()
		b.remember(id, userKey, k, prefix, b.cacheRead(k, nil, false, prefix))
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get state %q: %w", b.states[id].name, err)
	}
	b.vbuf = append(b.vbuf[:0], v...)
	closer.Close()
	b.evict()
	b.remember(id, userKey, k, prefix, b.cacheRead(k, b.vbuf, true, prefix))
	return b.vbuf, true, nil
}

func (b *backend) Put(id state.ID, userKey, value []byte) error {
	return b.write(id, userKey, value, false)
}

func (b *backend) Delete(id state.ID, userKey []byte) error {
	return b.write(id, userKey, nil, true)
}

func (b *backend) write(id state.ID, userKey, value []byte, del bool) error {
	if err := b.check(); err != nil {
		return err
	}
	b.observe()
	if l := &b.last; l.e != nil && l.id == id && bytes.Equal(l.userKey, userKey) {
		b.cacheWrite(l.k, value, del, l.prefix, l.e)
	} else {
		k, prefix, err := b.encode(id, userKey)
		if err != nil {
			return err
		}
		b.cacheWrite(k, value, del, prefix, nil)
	}
	b.last.e = nil
	if b.dirtyBytes > b.spillLimit {
		return b.spillDirty()
	}
	b.evict()
	return nil
}

// observe notices the epochs the asynchronous part wrote: once copied for
// their segment, their entries may be updated in place; once in Pebble,
// evicted.
func (b *backend) observe() {
	b.writtenSeen = b.written.Load()
	b.capturedSeen = b.ingestCaptured.Load()
	a := b.applied.Load()
	if a == b.appliedSeen {
		return
	}
	b.appliedSeen = a
	n := 0
	for n < len(b.frozen) && b.frozen[n].epoch <= a {
		b.frozenBytes -= b.frozen[n].genBytes
		n++
	}
	b.frozen = append(b.frozen[:0], b.frozen[n:]...)
}

// mapPrefixLen returns the length of the (state, key) prefix of stored key
// k if it belongs to a map state, else 0.
func (b *backend) mapPrefixLen(k string) int {
	if len(k) < 6 {
		return 0
	}
	tag := binary.BigEndian.Uint32([]byte(k[2:6]))
	if !b.mapTags[tag] {
		return 0
	}
	n, w := binary.Uvarint([]byte(k[6:min(len(k), 6+binary.MaxVarintLen64)]))
	if w <= 0 || uint64(len(k)-6-w) < n {
		return 0
	}
	return 6 + w + int(n)
}

func (b *backend) Scan(id state.ID, fn func(userKey, value []byte) error) error {
	if err := b.check(); err != nil {
		return err
	}
	if int(id) >= len(b.states) {
		return fmt.Errorf("unknown state id %d", id)
	}
	if b.states[id].kind != state.KindMap {
		v, ok, err := b.Get(id, nil)
		if err != nil || !ok {
			return err
		}
		return fn(nil, v)
	}
	b.observe()
	prefix := appendPrefix(nil, b.kg, b.states[id].tag, b.key)
	// The cached entries of this map are its newest values (those
	// already in Pebble are the same there).
	overlay := map[string]*entry{}
	for k := range b.prefixes[string(prefix)] {
		overlay[k] = b.cache.getString(k)
	}
	keys := make([]string, 0, len(overlay))
	for k := range overlay {
		keys = append(keys, k)
	}
	sort.Strings(keys)

	it, err := b.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("scan state %q: %w", b.states[id].name, err)
	}
	defer it.Close()
	valid := it.First()
	emit := func(k string, e *entry) error {
		if e.del {
			return nil
		}
		return fn([]byte(k[len(prefix):]), e.val)
	}
	for valid || len(keys) > 0 {
		switch {
		case valid && (len(keys) == 0 || bytes.Compare(it.Key(), []byte(keys[0])) < 0):
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("scan state %q: %w", b.states[id].name, err)
			}
			if err := fn(it.Key()[len(prefix):], v); err != nil {
				return err
			}
			valid = it.Next()
		default:
			if valid && bytes.Equal(it.Key(), []byte(keys[0])) {
				valid = it.Next() // the cache has a newer version
			}
			if err := emit(keys[0], overlay[keys[0]]); err != nil {
				return err
			}
			keys = keys[1:]
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("scan state %q: %w", b.states[id].name, err)
	}
	return nil
}

// fail marks the backend broken: its database no longer matches the
// history of changes, so no further access or snapshot may succeed.
func (b *backend) fail(err error) error {
	b.broken.CompareAndSwap(nil, &err)
	return err
}
