package state

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/onceflow/onceflow/checkpoint"
)

// Memory is the in-memory backend: fast, bounded by RAM, for tests and small
// jobs. Its snapshot serializes the whole state in the synchronous part (cost
// proportional to state size) and uploads it as one object.
var Memory Factory = memoryFactory{}

type memoryFactory struct{}

func (memoryFactory) New(ctx context.Context, info SubtaskInfo, restore []checkpoint.Handle, from Downloader) (Backend, error) {
	b := &memBackend{
		info:   info,
		names:  map[string]ID{},
		groups: make([]map[string]*memEntry, info.KeyGroups.End-info.KeyGroups.Start),
	}
	for _, h := range restore {
		if !h.KeyGroups.Intersects(info.KeyGroups) {
			continue
		}
		if err := b.restore(ctx, h, from); err != nil {
			return nil, fmt.Errorf("restore %s/%d from %s: %w", info.Operator, info.Subtask, h.Name, err)
		}
	}
	return b, nil
}

type memBackend struct {
	info   SubtaskInfo
	names  map[string]ID
	kinds  []Kind
	snames []string
	// groups[kg-start] maps a key to its entry.
	groups []map[string]*memEntry

	curGroup int // index into groups, -1 when the key group is not owned
	curKey   []byte
	cur      *memEntry
}

// memEntry holds every state of one key, indexed by state ID.
type memEntry struct {
	values [][]byte
	maps   []map[string][]byte
}

func (b *memBackend) Register(name string, kind Kind) (ID, error) {
	if id, ok := b.names[name]; ok {
		if b.kinds[id] != kind {
			return 0, fmt.Errorf("state %q registered as %s, now requested as %s", name, b.kinds[id], kind)
		}
		return id, nil
	}
	if len(b.kinds) >= 1<<16-1 {
		return 0, fmt.Errorf("state %q: too many states", name)
	}
	id := ID(len(b.kinds))
	b.names[name] = id
	b.kinds = append(b.kinds, kind)
	b.snames = append(b.snames, name)
	return id, nil
}

func (b *memBackend) SetCurrentKey(kg int, key []byte) {
	b.curKey = key
	b.cur = nil
	if !b.info.KeyGroups.Contains(kg) {
		b.curGroup = -1
		return
	}
	b.curGroup = kg - b.info.KeyGroups.Start
	if g := b.groups[b.curGroup]; g != nil {
		b.cur = g[string(key)]
	}
}

func (b *memBackend) checkKey() error {
	if b.curGroup < 0 {
		return fmt.Errorf("%s/%d: key %q is in a key group outside %v", b.info.Operator, b.info.Subtask, b.curKey, b.info.KeyGroups)
	}
	return nil
}

// entry returns the current key's entry, creating it when create is set.
func (b *memBackend) entry(create bool) *memEntry {
	if b.cur != nil || !create {
		return b.cur
	}
	g := b.groups[b.curGroup]
	if g == nil {
		g = map[string]*memEntry{}
		b.groups[b.curGroup] = g
	}
	e := &memEntry{}
	g[string(b.curKey)] = e
	b.cur = e
	return e
}

func (b *memBackend) Get(id ID, userKey []byte) ([]byte, bool, error) {
	if err := b.checkKey(); err != nil {
		return nil, false, err
	}
	e := b.cur
	if e == nil {
		return nil, false, nil
	}
	if b.kinds[id] == KindMap {
		if int(id) >= len(e.maps) || e.maps[id] == nil {
			return nil, false, nil
		}
		v, ok := e.maps[id][string(userKey)]
		return v, ok, nil
	}
	if int(id) >= len(e.values) || e.values[id] == nil {
		return nil, false, nil
	}
	return e.values[id], true, nil
}

func (b *memBackend) Put(id ID, userKey, value []byte) error {
	if err := b.checkKey(); err != nil {
		return err
	}
	e := b.entry(true)
	if b.kinds[id] == KindMap {
		for len(e.maps) <= int(id) {
			e.maps = append(e.maps, nil)
		}
		if e.maps[id] == nil {
			e.maps[id] = map[string][]byte{}
		}
		e.maps[id][string(userKey)] = bytes.Clone(value)
		return nil
	}
	for len(e.values) <= int(id) {
		e.values = append(e.values, nil)
	}
	// Reuse the old buffer: an update of a counter allocates nothing.
	e.values[id] = append(e.values[id][:0], value...)
	if e.values[id] == nil {
		e.values[id] = []byte{}
	}
	return nil
}

func (b *memBackend) Delete(id ID, userKey []byte) error {
	if err := b.checkKey(); err != nil {
		return err
	}
	e := b.cur
	if e == nil {
		return nil
	}
	if b.kinds[id] == KindMap {
		if int(id) < len(e.maps) && e.maps[id] != nil {
			delete(e.maps[id], string(userKey))
		}
	} else if int(id) < len(e.values) {
		e.values[id] = nil
	}
	if e.empty() {
		delete(b.groups[b.curGroup], string(b.curKey))
		b.cur = nil
	}
	return nil
}

func (e *memEntry) empty() bool {
	for _, v := range e.values {
		if v != nil {
			return false
		}
	}
	for _, m := range e.maps {
		if len(m) > 0 {
			return false
		}
	}
	return true
}

func (b *memBackend) Scan(id ID, fn func(userKey, value []byte) error) error {
	if err := b.checkKey(); err != nil {
		return err
	}
	e := b.cur
	if e == nil {
		return nil
	}
	if b.kinds[id] != KindMap {
		if int(id) < len(e.values) && e.values[id] != nil {
			return fn(nil, e.values[id])
		}
		return nil
	}
	if int(id) >= len(e.maps) {
		return nil
	}
	m := e.maps[id]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), m[k]); err != nil {
			return err
		}
	}
	return nil
}

func (b *memBackend) Close() error {
	b.groups = nil
	return nil
}

// Snapshot serializes everything now: the in-memory maps keep changing as soon
// as the subtask processes the next record.
func (b *memBackend) Snapshot(id uint64) (PendingSnapshot, error) {
	buf := encodeMemState(b)
	return memSnapshot{
		data: buf,
		name: fmt.Sprintf("%s-%d.memstate", b.info.Operator, b.info.Subtask),
		kgs:  b.info.KeyGroups,
	}, nil
}

type memSnapshot struct {
	data []byte
	name string
	kgs  checkpoint.KeyGroupRange
}

func (s memSnapshot) Upload(ctx context.Context, to Uploader) ([]checkpoint.Handle, error) {
	h, err := to.Upload(ctx, s.name, bytes.NewReader(s.data), int64(len(s.data)))
	if err != nil {
		return nil, err
	}
	h.KeyGroups = s.kgs
	return []checkpoint.Handle{h}, nil
}

func (b *memBackend) restore(ctx context.Context, h checkpoint.Handle, from Downloader) error {
	rc, err := from.Open(ctx, h)
	if err != nil {
		return err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	return decodeMemState(b, data)
}

var memMagic = []byte("OFMEMST1")

// encodeMemState writes: magic, the state table (name, kind), then one record
// per stored item: key group, state index, key, user key, value.
func encodeMemState(b *memBackend) []byte {
	buf := append([]byte(nil), memMagic...)
	buf = binary.AppendUvarint(buf, uint64(len(b.snames)))
	for i, n := range b.snames {
		buf = appendBytes(buf, []byte(n))
		buf = append(buf, byte(b.kinds[i]))
	}
	for gi, g := range b.groups {
		kg := uint64(gi + b.info.KeyGroups.Start)
		for key, e := range g {
			for id, v := range e.values {
				if v != nil {
					buf = appendRecord(buf, kg, id, key, "", v)
				}
			}
			for id, m := range e.maps {
				for uk, v := range m {
					buf = appendRecord(buf, kg, id, key, uk, v)
				}
			}
		}
	}
	return buf
}

func appendRecord(buf []byte, kg uint64, id int, key, userKey string, v []byte) []byte {
	buf = binary.AppendUvarint(buf, kg)
	buf = binary.AppendUvarint(buf, uint64(id))
	buf = appendBytes(buf, []byte(key))
	buf = appendBytes(buf, []byte(userKey))
	return appendBytes(buf, v)
}

func appendBytes(buf, b []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(b)))
	return append(buf, b...)
}

// decodeMemState restores the records of the key groups b owns.
func decodeMemState(b *memBackend, data []byte) error {
	r := reader{data: data}
	if !bytes.HasPrefix(data, memMagic) {
		return fmt.Errorf("not an in-memory state snapshot (bad magic)")
	}
	r.off = len(memMagic)
	n := r.uvarint()
	var ids []ID
	for i := uint64(0); i < n && r.err == nil; i++ {
		name := string(r.bytes())
		kind := Kind(r.byte())
		if r.err != nil {
			break
		}
		id, err := b.Register(name, kind)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	for r.err == nil && r.off < len(data) {
		kg, sidx := r.uvarint(), r.uvarint()
		key, userKey, v := r.bytes(), r.bytes(), r.bytes()
		if r.err != nil {
			break
		}
		if sidx >= uint64(len(ids)) {
			return fmt.Errorf("record at byte %d names state %d of %d", r.off, sidx, len(ids))
		}
		if kg > uint64(b.info.MaxParallelism) || !b.info.KeyGroups.Contains(int(kg)) {
			continue // another subtask's key group after rescaling
		}
		b.SetCurrentKey(int(kg), key)
		if err := b.Put(ids[sidx], userKey, v); err != nil {
			return err
		}
	}
	if r.err != nil {
		return r.err
	}
	b.SetCurrentKey(-1, nil)
	return nil
}

type reader struct {
	data []byte
	off  int
	err  error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.data[r.off:])
	if n <= 0 {
		r.err = fmt.Errorf("corrupt state snapshot: bad varint at byte %d", r.off)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.data)-r.off) {
		r.err = fmt.Errorf("corrupt state snapshot: length %d at byte %d exceeds the data", n, r.off)
		return nil
	}
	b := r.data[r.off : r.off+int(n)]
	r.off += int(n)
	return b
}

func (r *reader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.data) {
		r.err = fmt.Errorf("corrupt state snapshot: truncated at byte %d", r.off)
		return 0
	}
	c := r.data[r.off]
	r.off++
	return c
}
