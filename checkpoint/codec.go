package checkpoint

// Manifest encoding, format version 1.
//
// A manifest is what makes a checkpoint complete, so its encoding is written
// by hand: every byte is accounted for, a flipped bit is detected before any
// field is trusted, and hostile input can neither crash the decoder nor make it
// allocate more than a small multiple of its own size.
//
//	offset 0   magic            6 bytes  "OFCKMF"
//	offset 6   format version   uint16, big endian (1)
//	offset 8   body length      uvarint
//	           body             body length bytes (below)
//	           checksum         uint32, big endian: CRC-32C (Castagnoli)
//	                            of every byte before it
//
// The encoding is exactly that long: trailing bytes are corruption. In the
// body, "uv" is a canonical (shortest form) uvarint, "zv" a zigzag varint,
// "str" and "bytes" a uv length followed by that many bytes, "u32" a
// big-endian uint32, and "n×" a uv count followed by that many elements.
//
//	Manifest      str Job, uv ID, 1 byte Kind, zv CreatedUnixMilli,
//	              uv MaxParallelism, n× OperatorState
//	OperatorState str Name, uv Parallelism, n× SubtaskState
//	SubtaskState  str Operator, uv Subtask, uv KeyGroups.Start,
//	              uv KeyGroups.End, n× Handle, n× SourcePosition,
//	              n× Committable, n× NamedValue
//	Handle        str Name, uv Size, u32 CRC32C, uv KeyGroups.Start,
//	              uv KeyGroups.End
//	SourcePosition str Split, bytes Position
//	Committable   uv CheckpointID, bytes Data
//	NamedValue    str Name, bytes Data
//
// The codec mirrors the structs field for field, redundant ones included
// (SubtaskState.Operator, SubtaskState.Subtask, Parallelism next to the
// subtask count): Validate, run on both encode and decode, is the single
// place that decides which combinations are legal. Signed fields that
// Validate keeps non-negative are written as uvarints.
//
// Normalisation: an empty slice or byte string decodes as nil, so a nil and
// an empty slice encode identically and both decode to nil. Nothing else is
// normalised: decode(encode(m)) equals m field for field once empty slices are
// taken as nil, and encode(decode(b)) == b for every b that decodes.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// ErrCorrupt is returned (wrapped, with the precise reason) when stored
// checkpoint data cannot be trusted: a manifest that does not decode or is
// invalid, or an object whose size or checksum differs from its handle.
var ErrCorrupt = errors.New("corrupt checkpoint data")

// ManifestFormatVersion is the manifest format this build writes and reads.
const ManifestFormatVersion = 1

const (
	manifestMagic = "OFCKMF"
	// manifestHeaderLen is magic + version; the body length follows.
	manifestHeaderLen = len(manifestMagic) + 2
	manifestCRCLen    = 4
)

var manifestCRCTable = crc32.MakeTable(crc32.Castagnoli)

// EncodeManifest validates m and returns its encoding.
func EncodeManifest(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	var e mfEncoder
	e.manifest(m)
	return frameManifest(e.buf), nil
}

// frameManifest wraps an encoded body in magic, version, length and checksum.
func frameManifest(body []byte) []byte {
	out := make([]byte, 0, manifestHeaderLen+binary.MaxVarintLen64+len(body)+manifestCRCLen)
	out = append(out, manifestMagic...)
	out = binary.BigEndian.AppendUint16(out, ManifestFormatVersion)
	out = binary.AppendUvarint(out, uint64(len(body)))
	out = append(out, body...)
	return binary.BigEndian.AppendUint32(out, crc32.Checksum(out, manifestCRCTable))
}

// DecodeManifest decodes and validates an encoded manifest. Every failure
// wraps ErrCorrupt and says what is wrong and at which byte.
func DecodeManifest(data []byte) (*Manifest, error) {
	if len(data) < len(manifestMagic) {
		if bytes.HasPrefix([]byte(manifestMagic), data) {
			return nil, fmt.Errorf("%w: truncated at byte %d (in the magic)", ErrCorrupt, len(data))
		}
		return nil, fmt.Errorf("%w: bad magic %q (want %q)", ErrCorrupt, data, manifestMagic)
	}
	if string(data[:len(manifestMagic)]) != manifestMagic {
		return nil, fmt.Errorf("%w: bad magic %q (want %q)", ErrCorrupt, data[:len(manifestMagic)], manifestMagic)
	}
	if len(data) < manifestHeaderLen {
		return nil, fmt.Errorf("%w: truncated at byte %d (in the format version)", ErrCorrupt, len(data))
	}
	// The version is checked before the checksum: a newer format may place
	// or compute its checksum differently, and "unknown version" is the
	// useful message for a manifest written by a newer build.
	if v := binary.BigEndian.Uint16(data[len(manifestMagic):]); v != ManifestFormatVersion {
		return nil, fmt.Errorf("%w: unknown format version %d (this build reads %d)", ErrCorrupt, v, ManifestFormatVersion)
	}
	hd := mfDecoder{buf: data, pos: manifestHeaderLen}
	bodyLen := hd.uvarint("body length")
	if hd.err != nil {
		return nil, hd.err
	}
	bodyStart := hd.pos
	if avail := uint64(len(data) - bodyStart); bodyLen > avail || avail-bodyLen < manifestCRCLen {
		return nil, fmt.Errorf("%w: truncated at byte %d (body of %d bytes and %d-byte checksum start at byte %d)",
			ErrCorrupt, len(data), bodyLen, manifestCRCLen, bodyStart)
	}
	crcAt := bodyStart + int(bodyLen)
	if end := crcAt + manifestCRCLen; end != len(data) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the checksum at byte %d", ErrCorrupt, len(data)-end, end)
	}
	stored := binary.BigEndian.Uint32(data[crcAt:])
	if computed := crc32.Checksum(data[:crcAt], manifestCRCTable); stored != computed {
		return nil, fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x over %d bytes)", ErrCorrupt, stored, computed, crcAt)
	}

	d := mfDecoder{buf: data[:crcAt], pos: bodyStart}
	m := d.manifest()
	if d.err != nil {
		return nil, d.err
	}
	if d.pos != crcAt {
		return nil, fmt.Errorf("%w: %d unread bytes at the end of the body at byte %d", ErrCorrupt, crcAt-d.pos, d.pos)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: checksum is correct but the manifest is invalid: %w", ErrCorrupt, err)
	}
	return m, nil
}

// mfEncoder appends the body. It trusts its input: EncodeManifest validated
// it, so every int it writes as a uvarint is non-negative.
type mfEncoder struct{ buf []byte }

func (e *mfEncoder) uv(v uint64)         { e.buf = binary.AppendUvarint(e.buf, v) }
func (e *mfEncoder) int(v int)           { e.uv(uint64(v)) }
func (e *mfEncoder) str(s string)        { e.uv(uint64(len(s))); e.buf = append(e.buf, s...) }
func (e *mfEncoder) bytes(b []byte)      { e.uv(uint64(len(b))); e.buf = append(e.buf, b...) }
func (e *mfEncoder) kgr(r KeyGroupRange) { e.int(r.Start); e.int(r.End) }

func (e *mfEncoder) manifest(m *Manifest) {
	e.str(m.Job)
	e.uv(m.ID)
	e.buf = append(e.buf, byte(m.Kind))
	e.buf = binary.AppendVarint(e.buf, m.CreatedUnixMilli)
	e.int(m.MaxParallelism)
	e.int(len(m.Operators))
	for i := range m.Operators {
		op := &m.Operators[i]
		e.str(op.Name)
		e.int(op.Parallelism)
		e.int(len(op.Subtasks))
		for j := range op.Subtasks {
			e.subtask(&op.Subtasks[j])
		}
	}
}

func (e *mfEncoder) subtask(st *SubtaskState) {
	e.str(st.Operator)
	e.int(st.Subtask)
	e.kgr(st.KeyGroups)
	e.int(len(st.Keyed))
	for _, h := range st.Keyed {
		e.str(h.Name)
		e.uv(uint64(h.Size))
		e.buf = binary.BigEndian.AppendUint32(e.buf, h.CRC32C)
		e.kgr(h.KeyGroups)
	}
	e.int(len(st.Positions))
	for _, p := range st.Positions {
		e.str(p.Split)
		e.bytes(p.Position)
	}
	e.int(len(st.Committables))
	for _, c := range st.Committables {
		e.uv(c.CheckpointID)
		e.bytes(c.Data)
	}
	e.int(len(st.Values))
	for _, v := range st.Values {
		e.str(v.Name)
		e.bytes(v.Data)
	}
}

// Minimum encoded sizes of repeated elements. A count is rejected when that
// many elements could not fit in the bytes left, which bounds every
// allocation by the input size.
const (
	mfMinOperator = 3 // name, parallelism, subtask count
	mfMinSubtask  = 8 // operator, index, 2 key groups, 4 counts
	mfMinHandle   = 8 // name, size, 4-byte crc, 2 key groups
	mfMinPair     = 2 // length-prefixed name or id + length-prefixed bytes
)

// mfDecoder reads the body with a sticky error: after the first failure every
// read returns a zero value, so the structure code stays linear. path tracks
// where in the manifest the decoder is, for error messages only.
type mfDecoder struct {
	buf  []byte
	pos  int
	err  error
	path []mfPathElem
}

type mfPathElem struct {
	name  string
	index int
}

func (d *mfDecoder) enter(name string) { d.path = append(d.path, mfPathElem{name, 0}) }
func (d *mfDecoder) at(i int)          { d.path[len(d.path)-1].index = i }
func (d *mfDecoder) leave()            { d.path = d.path[:len(d.path)-1] }

func (d *mfDecoder) fail(field, format string, args ...any) {
	if d.err != nil {
		return
	}
	where := ""
	for _, p := range d.path {
		where += fmt.Sprintf("%s[%d].", p.name, p.index)
	}
	d.err = fmt.Errorf("%w: %s (reading %s%s)", ErrCorrupt, fmt.Sprintf(format, args...), where, field)
}

func (d *mfDecoder) uvarint(field string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.buf[d.pos:])
	switch {
	case n == 0:
		d.fail(field, "truncated at byte %d", len(d.buf))
		return 0
	case n < 0:
		d.fail(field, "varint overflows 64 bits at byte %d", d.pos)
		return 0
	case n > 1 && d.buf[d.pos+n-1] == 0:
		// Overlong forms would decode to the same value but re-encode
		// differently; accepting them would break encode(decode(b)) == b.
		d.fail(field, "non-canonical varint at byte %d", d.pos)
		return 0
	}
	d.pos += n
	return v
}

func (d *mfDecoder) varint(field string) int64 {
	ux := d.uvarint(field) // zigzag, as binary.AppendVarint writes it
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *mfDecoder) int(field string) int {
	at := d.pos
	v := d.uvarint(field)
	if v > math.MaxInt {
		d.fail(field, "value %d at byte %d does not fit an int", v, at)
		return 0
	}
	return int(v)
}

// size reads a non-negative int64 (int may be 32 bits, object sizes not).
func (d *mfDecoder) size(field string) int64 {
	at := d.pos
	v := d.uvarint(field)
	if v > math.MaxInt64 {
		d.fail(field, "value %d at byte %d does not fit an int64", v, at)
		return 0
	}
	return int64(v)
}

// count reads an element count, refusing one that cannot fit.
func (d *mfDecoder) count(field string, minSize int) int {
	at := d.pos
	n := d.uvarint(field)
	if rest := len(d.buf) - d.pos; d.err == nil && n > uint64(rest/minSize) {
		d.fail(field, "count %d at byte %d cannot fit in the %d bytes left", n, at, rest)
		return 0
	}
	return int(n)
}

func (d *mfDecoder) raw(field string) []byte {
	at := d.pos
	n := d.uvarint(field)
	if d.err != nil {
		return nil
	}
	if rest := len(d.buf) - d.pos; n > uint64(rest) {
		d.fail(field, "truncated at byte %d (length %d at byte %d, %d bytes left)", len(d.buf), n, at, rest)
		return nil
	}
	b := d.buf[d.pos : d.pos+int(n)]
	d.pos += int(n)
	return b
}

func (d *mfDecoder) str(field string) string { return string(d.raw(field)) }

// bytes copies, so that the manifest does not pin the input buffer.
func (d *mfDecoder) bytes(field string) []byte {
	if b := d.raw(field); len(b) > 0 {
		return bytes.Clone(b)
	}
	return nil
}

func (d *mfDecoder) fixed(field string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.buf)-d.pos < n {
		d.fail(field, "truncated at byte %d", len(d.buf))
		return nil
	}
	b := d.buf[d.pos : d.pos+n]
	d.pos += n
	return b
}

func (d *mfDecoder) kgr(field string) KeyGroupRange {
	return KeyGroupRange{Start: d.int(field + ".start"), End: d.int(field + ".end")}
}

func (d *mfDecoder) manifest() *Manifest {
	m := &Manifest{}
	m.Job = d.str("job")
	m.ID = d.uvarint("id")
	if b := d.fixed("kind", 1); b != nil {
		m.Kind = Kind(b[0])
	}
	m.CreatedUnixMilli = d.varint("created")
	m.MaxParallelism = d.int("max parallelism")
	n := d.count("operator count", mfMinOperator)
	if n > 0 {
		m.Operators = make([]OperatorState, n)
	}
	d.enter("operators")
	for i := 0; i < n && d.err == nil; i++ {
		d.at(i)
		op := &m.Operators[i]
		op.Name = d.str("name")
		op.Parallelism = d.int("parallelism")
		ns := d.count("subtask count", mfMinSubtask)
		if ns > 0 {
			op.Subtasks = make([]SubtaskState, ns)
		}
		d.enter("subtasks")
		for j := 0; j < ns && d.err == nil; j++ {
			d.at(j)
			d.subtask(&op.Subtasks[j])
		}
		d.leave()
	}
	d.leave()
	return m
}

func (d *mfDecoder) subtask(st *SubtaskState) {
	st.Operator = d.str("operator")
	st.Subtask = d.int("subtask")
	st.KeyGroups = d.kgr("key groups")

	if n := d.count("keyed count", mfMinHandle); n > 0 {
		st.Keyed = make([]Handle, n)
		d.enter("keyed")
		for i := 0; i < n && d.err == nil; i++ {
			d.at(i)
			h := &st.Keyed[i]
			h.Name = d.str("name")
			h.Size = d.size("size")
			if b := d.fixed("crc32c", 4); b != nil {
				h.CRC32C = binary.BigEndian.Uint32(b)
			}
			h.KeyGroups = d.kgr("key groups")
		}
		d.leave()
	}
	if n := d.count("position count", mfMinPair); n > 0 {
		st.Positions = make([]SourcePosition, n)
		d.enter("positions")
		for i := 0; i < n && d.err == nil; i++ {
			d.at(i)
			st.Positions[i] = SourcePosition{Split: d.str("split"), Position: d.bytes("position")}
		}
		d.leave()
	}
	if n := d.count("committable count", mfMinPair); n > 0 {
		st.Committables = make([]Committable, n)
		d.enter("committables")
		for i := 0; i < n && d.err == nil; i++ {
			d.at(i)
			st.Committables[i] = Committable{CheckpointID: d.uvarint("checkpoint id"), Data: d.bytes("data")}
		}
		d.leave()
	}
	if n := d.count("value count", mfMinPair); n > 0 {
		st.Values = make([]NamedValue, n)
		d.enter("values")
		for i := 0; i < n && d.err == nil; i++ {
			d.at(i)
			st.Values[i] = NamedValue{Name: d.str("name"), Data: d.bytes("data")}
		}
		d.leave()
	}
}

// Validate reports the first way in which m is not a manifest that a job could
// be restored from. EncodeManifest and DecodeManifest both run it, so an
// invalid manifest is never written and never trusted. It checks that:
//
//   - Job is a valid job name (ValidJobName) and Kind is known;
//   - MaxParallelism >= 1;
//   - operator names are non-empty, sorted and unique;
//   - every operator has 1 <= Parallelism <= MaxParallelism and exactly
//     Parallelism subtasks, with Subtask 0..Parallelism-1 in order and
//     Operator equal to the operator's name;
//   - every key group range (subtask and handle) has
//     0 <= Start <= End <= MaxParallelism, and the ranges of the subtasks
//     of one operator do not overlap (a key group restored twice would
//     count its inputs twice);
//   - every handle names a valid object (ValidName) with Size >= 0, and an
//     object referenced more than once has the same size and CRC each time;
//   - source splits and value names are unique within a subtask;
//   - no committable belongs to a checkpoint newer than the manifest.
func (m *Manifest) Validate() error {
	if m == nil {
		return errors.New("nil manifest")
	}
	if err := ValidJobName(m.Job); err != nil {
		return err
	}
	if m.Kind != KindCheckpoint && m.Kind != KindSavepoint {
		return fmt.Errorf("manifest %d of job %q: unknown kind %d", m.ID, m.Job, uint8(m.Kind))
	}
	if m.MaxParallelism < 1 {
		return fmt.Errorf("%s %d of job %q: max parallelism %d < 1", m.Kind, m.ID, m.Job, m.MaxParallelism)
	}
	objects := map[string]Handle{}
	for i := range m.Operators {
		op := &m.Operators[i]
		if op.Name == "" {
			return fmt.Errorf("%s %d of job %q: operator %d has an empty name", m.Kind, m.ID, m.Job, i)
		}
		if i > 0 && m.Operators[i-1].Name >= op.Name {
			return fmt.Errorf("%s %d of job %q: operators not sorted and unique by name: %q then %q",
				m.Kind, m.ID, m.Job, m.Operators[i-1].Name, op.Name)
		}
		if err := m.validateOperator(op, objects); err != nil {
			return fmt.Errorf("%s %d of job %q: operator %q: %w", m.Kind, m.ID, m.Job, op.Name, err)
		}
	}
	return nil
}

func (m *Manifest) validateOperator(op *OperatorState, objects map[string]Handle) error {
	if op.Parallelism < 1 || op.Parallelism > m.MaxParallelism {
		return fmt.Errorf("parallelism %d outside [1, max parallelism %d]", op.Parallelism, m.MaxParallelism)
	}
	if len(op.Subtasks) != op.Parallelism {
		return fmt.Errorf("%d subtasks for parallelism %d", len(op.Subtasks), op.Parallelism)
	}
	var keyed []KeyGroupRange
	for i := range op.Subtasks {
		st := &op.Subtasks[i]
		if st.Subtask != i {
			return fmt.Errorf("subtask at position %d has index %d", i, st.Subtask)
		}
		if st.Operator != op.Name {
			return fmt.Errorf("subtask %d belongs to operator %q", i, st.Operator)
		}
		if err := m.validateRange(st.KeyGroups); err != nil {
			return fmt.Errorf("subtask %d: %w", i, err)
		}
		if !st.KeyGroups.Empty() {
			keyed = append(keyed, st.KeyGroups)
		}
		if err := m.validateSubtask(st, objects); err != nil {
			return fmt.Errorf("subtask %d: %w", i, err)
		}
	}
	slices.SortFunc(keyed, func(a, b KeyGroupRange) int { return cmp.Compare(a.Start, b.Start) })
	for i := 1; i < len(keyed); i++ {
		if keyed[i-1].Intersects(keyed[i]) {
			return fmt.Errorf("subtasks own overlapping key groups [%d,%d) and [%d,%d)",
				keyed[i-1].Start, keyed[i-1].End, keyed[i].Start, keyed[i].End)
		}
	}
	return nil
}

func (m *Manifest) validateRange(r KeyGroupRange) error {
	if r.Start < 0 || r.Start > r.End || r.End > m.MaxParallelism {
		return fmt.Errorf("key groups [%d,%d) not a range within [0,%d)", r.Start, r.End, m.MaxParallelism)
	}
	return nil
}

func (m *Manifest) validateSubtask(st *SubtaskState, objects map[string]Handle) error {
	for _, h := range st.Keyed {
		if err := ValidName(h.Name); err != nil {
			return fmt.Errorf("keyed state handle: %w", err)
		}
		if h.Size < 0 {
			return fmt.Errorf("object %s: negative size %d", h.Name, h.Size)
		}
		if err := m.validateRange(h.KeyGroups); err != nil {
			return fmt.Errorf("object %s: %w", h.Name, err)
		}
		if prev, ok := objects[h.Name]; ok && (prev.Size != h.Size || prev.CRC32C != h.CRC32C) {
			return fmt.Errorf("object %s referenced twice with different contents (size %d crc32c %08x, then size %d crc32c %08x)",
				h.Name, prev.Size, prev.CRC32C, h.Size, h.CRC32C)
		}
		objects[h.Name] = h
	}
	if dup, ok := mfDuplicate(len(st.Positions), func(i int) string { return st.Positions[i].Split }); ok {
		return fmt.Errorf("two positions for source split %q", dup)
	}
	for _, c := range st.Committables {
		if c.CheckpointID > m.ID {
			return fmt.Errorf("committable of checkpoint %d in the manifest of %d", c.CheckpointID, m.ID)
		}
	}
	if dup, ok := mfDuplicate(len(st.Values), func(i int) string { return st.Values[i].Name }); ok {
		return fmt.Errorf("two values named %q", dup)
	}
	return nil
}

// mfDuplicate returns a key that occurs twice among key(0..n-1). Small lists
// are compared pairwise; long ones go through a set, so that hostile input
// with many entries cannot make validation quadratic.
func mfDuplicate(n int, key func(int) string) (string, bool) {
	if n <= 16 {
		for i := 1; i < n; i++ {
			for j := 0; j < i; j++ {
				if key(i) == key(j) {
					return key(i), true
				}
			}
		}
		return "", false
	}
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		k := key(i)
		if _, ok := seen[k]; ok {
			return k, true
		}
		seen[k] = struct{}{}
	}
	return "", false
}
