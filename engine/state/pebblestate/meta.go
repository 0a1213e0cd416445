package pebblestate

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// snapMeta describes one subtask's snapshot: the base (the files of a Pebble
// checkpoint taken at checkpoint BaseID) and the changelog segments to replay
// on top of it, each with the handle of its object in the store. It is
// uploaded last, as an object of its own, and its handle ends the list the
// subtask acknowledges; restore starts from it.
type snapMeta struct {
	CheckpointID   uint64
	KeyGroups      checkpoint.KeyGroupRange
	MaxParallelism int
	States         []stateDecl
	BaseID         uint64
	Base           []fileRef
	Segments       []segRef
}

type stateDecl struct {
	Name string
	Kind state.Kind
}

// fileRef is a file of the base: its name in the Pebble directory and the
// object holding it.
type fileRef struct {
	Name string
	H    checkpoint.Handle
}

// segRef is a changelog segment of the interval that ended with checkpoint
// ID (an interval has one, or more when the record path spilled).
type segRef struct {
	ID uint64
	H  checkpoint.Handle
}

// metaMagic names the format and its version; a new layout gets a new magic
// and the decoder keeps reading the old one.
var metaMagic = []byte("OFPMETA1")

// metaSuffix ends the object name of every meta (the engine prefixes the
// names the backend chooses), which is how restore finds them among the
// handles of a checkpoint.
const metaSuffix = "pebble.meta"

func (m *snapMeta) handles() []checkpoint.Handle {
	var hs []checkpoint.Handle
	for _, f := range m.Base {
		hs = append(hs, f.H)
	}
	for _, s := range m.Segments {
		hs = append(hs, s.H)
	}
	return hs
}

func (m *snapMeta) encode() []byte {
	b := append([]byte(nil), metaMagic...)
	b = binary.AppendUvarint(b, m.CheckpointID)
	b = binary.AppendUvarint(b, uint64(m.KeyGroups.Start))
	b = binary.AppendUvarint(b, uint64(m.KeyGroups.End))
	b = binary.AppendUvarint(b, uint64(m.MaxParallelism))
	b = binary.AppendUvarint(b, uint64(len(m.States)))
	for _, s := range m.States {
		b = appendString(b, s.Name)
		b = append(b, byte(s.Kind))
	}
	b = binary.AppendUvarint(b, m.BaseID)
	b = binary.AppendUvarint(b, uint64(len(m.Base)))
	for _, f := range m.Base {
		b = appendString(b, f.Name)
		b = appendHandle(b, f.H)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Segments)))
	for _, s := range m.Segments {
		b = binary.AppendUvarint(b, s.ID)
		b = appendHandle(b, s.H)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHandle(b []byte, h checkpoint.Handle) []byte {
	b = appendString(b, h.Name)
	b = binary.AppendUvarint(b, uint64(h.Size))
	return binary.BigEndian.AppendUint32(b, h.CRC32C)
}

func decodeMeta(data []byte) (*snapMeta, error) {
	if !bytes.HasPrefix(data, metaMagic) {
		return nil, fmt.Errorf("not a pebblestate snapshot description (bad magic)")
	}
	r := &metaReader{b: data, off: len(metaMagic)}
	m := &snapMeta{CheckpointID: r.uvarint()}
	m.KeyGroups.Start = r.int()
	m.KeyGroups.End = r.int()
	m.MaxParallelism = r.int()
	for n := r.count(); n > 0 && r.err == nil; n-- {
		m.States = append(m.States, stateDecl{Name: r.string(), Kind: state.Kind(r.byte())})
	}
	m.BaseID = r.uvarint()
	for n := r.count(); n > 0 && r.err == nil; n-- {
		m.Base = append(m.Base, fileRef{Name: r.string(), H: r.handle()})
	}
	for n := r.count(); n > 0 && r.err == nil; n-- {
		m.Segments = append(m.Segments, segRef{ID: r.uvarint(), H: r.handle()})
	}
	if r.err == nil && r.off != len(data) {
		r.err = fmt.Errorf("%d trailing bytes", len(data)-r.off)
	}
	if r.err != nil {
		return nil, fmt.Errorf("corrupt pebblestate snapshot description: %w", r.err)
	}
	if err := m.validate(); err != nil {
		return nil, fmt.Errorf("invalid pebblestate snapshot description: %w", err)
	}
	return m, nil
}

func (m *snapMeta) validate() error {
	if m.KeyGroups.Start < 0 || m.KeyGroups.End > m.MaxParallelism || m.KeyGroups.Empty() || m.MaxParallelism > 1<<15 {
		return fmt.Errorf("key groups %v of max parallelism %d", m.KeyGroups, m.MaxParallelism)
	}
	if len(m.Base) == 0 {
		return fmt.Errorf("checkpoint %d: no base files", m.CheckpointID)
	}
	for _, f := range m.Base {
		if err := checkpoint.ValidName(f.Name); err != nil || bytes.ContainsRune([]byte(f.Name), '/') {
			return fmt.Errorf("checkpoint %d: base file name %q", m.CheckpointID, f.Name)
		}
	}
	for _, h := range m.handles() {
		if h.Size < 0 || checkpoint.ValidName(h.Name) != nil {
			return fmt.Errorf("checkpoint %d: object %q of size %d", m.CheckpointID, h.Name, h.Size)
		}
	}
	prev := m.BaseID
	for _, s := range m.Segments {
		if s.ID <= m.BaseID || s.ID < prev || s.ID > m.CheckpointID {
			return fmt.Errorf("checkpoint %d: changelog segment %d out of order (base %d)", m.CheckpointID, s.ID, m.BaseID)
		}
		prev = s.ID
	}
	for _, s := range m.States {
		if s.Kind < state.KindValue || s.Kind > state.KindList {
			return fmt.Errorf("state %q: unknown kind %d", s.Name, s.Kind)
		}
	}
	return nil
}

// metaReader decodes with a sticky error, so that a truncated or corrupt
// description is one error, never a panic.
type metaReader struct {
	b   []byte
	off int
	err error
}

func (r *metaReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.err = fmt.Errorf("bad varint at byte %d", r.off)
		return 0
	}
	r.off += n
	return v
}

func (r *metaReader) int() int {
	v := r.uvarint()
	if v > 1<<31 {
		r.fail("value %d too large", v)
		return 0
	}
	return int(v)
}

// count reads a number of items, each at least one byte long.
func (r *metaReader) count() int {
	n := r.int()
	if n > len(r.b)-r.off {
		r.fail("count %d exceeds the data", n)
		return 0
	}
	return n
}

func (r *metaReader) string() string {
	n := r.int()
	if r.err != nil {
		return ""
	}
	if n > len(r.b)-r.off {
		r.fail("length %d exceeds the data", n)
		return ""
	}
	s := string(r.b[r.off : r.off+n])
	r.off += n
	return s
}

func (r *metaReader) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail("truncated")
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

func (r *metaReader) handle() checkpoint.Handle {
	h := checkpoint.Handle{Name: r.string(), Size: int64(r.uvarint())}
	if r.err == nil && len(r.b)-r.off < 4 {
		r.fail("truncated handle")
	}
	if r.err != nil {
		return h
	}
	h.CRC32C = binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return h
}

func (r *metaReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte %d: "+format, append([]any{r.off}, args...)...)
	}
}
