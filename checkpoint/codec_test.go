package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// cdcRichManifest uses every field, extreme values included, with empty
// slices written as nil (the form they decode to).
func cdcRichManifest() *Manifest {
	h := func(name string, size int64, crc uint32, kg KeyGroupRange) Handle {
		return Handle{Name: name, Size: size, CRC32C: crc, KeyGroups: kg}
	}
	shared := h("wc/data/00000000000000000007/shared.sst", 1<<40, 0xffffffff, KeyGroupRange{0, 128})
	return &Manifest{
		Job:              "wc",
		ID:               math.MaxUint64,
		Kind:             KindCheckpoint,
		CreatedUnixMilli: -1,
		MaxParallelism:   128,
		Operators: []OperatorState{
			{Name: "count", Parallelism: 2, Subtasks: []SubtaskState{
				{Operator: "count", Subtask: 0, KeyGroups: KeyGroupRange{0, 64},
					Keyed:  []Handle{shared, h("wc/data/00000000000000000009/a.sst", 0, 0, KeyGroupRange{0, 64})},
					Values: []NamedValue{{Name: "timers", Data: []byte{0, 1, 2}}, {Name: "empty"}}},
				{Operator: "count", Subtask: 1, KeyGroups: KeyGroupRange{64, 128},
					Keyed: []Handle{shared}},
			}},
			{Name: "sink", Parallelism: 1, Subtasks: []SubtaskState{
				{Operator: "sink", Subtask: 0, Committables: []Committable{
					{CheckpointID: 0, Data: []byte("txn-a")},
					{CheckpointID: math.MaxUint64, Data: bytes.Repeat([]byte{0x80}, 300)},
					{CheckpointID: 5},
				}},
			}},
			{Name: "source \u00e9\x00", Parallelism: 3, Subtasks: []SubtaskState{
				{Operator: "source \u00e9\x00", Subtask: 0, Positions: []SourcePosition{
					{Split: "lines-0", Position: []byte{0xff, 0xfe}}, {Split: ""}}},
				{Operator: "source \u00e9\x00", Subtask: 1, KeyGroups: KeyGroupRange{5, 5}},
				{Operator: "source \u00e9\x00", Subtask: 2, Positions: []SourcePosition{
					{Split: "lines-2", Position: bytes.Repeat([]byte("p"), 200)}}},
			}},
		},
	}
}

func cdcMinimalManifest() *Manifest {
	return &Manifest{Job: "j", ID: 0, Kind: KindSavepoint, MaxParallelism: 1}
}

// cdcRandomManifest builds a valid manifest from r.
func cdcRandomManifest(r *rand.Rand) *Manifest {
	blob := func() []byte {
		if r.IntN(4) == 0 {
			return nil
		}
		b := make([]byte, r.IntN(40)+1)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	}
	maxP := 1 + r.IntN(300)
	m := &Manifest{
		Job:              fmt.Sprintf("job-%d", r.IntN(1000)),
		ID:               r.Uint64() >> r.IntN(64),
		Kind:             Kind(1 + r.IntN(2)),
		CreatedUnixMilli: int64(r.Uint64()),
		MaxParallelism:   maxP,
	}
	for o := range r.IntN(4) {
		name := fmt.Sprintf("op%02d", o)
		p := 1 + r.IntN(min(maxP, 5))
		op := OperatorState{Name: name, Parallelism: p}
		keyed := r.IntN(2) == 0 && p <= maxP
		for i := range p {
			st := SubtaskState{Operator: name, Subtask: i}
			if keyed {
				st.KeyGroups = KeyGroupRange{i * maxP / p, (i + 1) * maxP / p}
				for k := range r.IntN(3) {
					st.Keyed = append(st.Keyed, Handle{
						Name: fmt.Sprintf("%s/data/%020d/%s-%d-%d.sst", m.Job, m.ID, name, i, k),
						Size: int64(r.Uint64() >> 1), CRC32C: r.Uint32(), KeyGroups: st.KeyGroups,
					})
				}
			}
			for k := range r.IntN(3) {
				st.Positions = append(st.Positions, SourcePosition{Split: fmt.Sprintf("s%d", k), Position: blob()})
			}
			for range r.IntN(3) {
				st.Committables = append(st.Committables, Committable{CheckpointID: m.ID >> r.IntN(64), Data: blob()})
			}
			for k := range r.IntN(3) {
				st.Values = append(st.Values, NamedValue{Name: fmt.Sprintf("v%d", k), Data: blob()})
			}
			op.Subtasks = append(op.Subtasks, st)
		}
		m.Operators = append(m.Operators, op)
	}
	return m
}

func cdcMustEncode(t testing.TB, m *Manifest) []byte {
	t.Helper()
	b, err := EncodeManifest(m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return b
}

// cdcReseal recomputes the trailing checksum, so that a test (or the fuzzer)
// can reach the body parser and Validate with a modified body.
func cdcReseal(b []byte) []byte {
	if len(b) < manifestCRCLen {
		return b
	}
	out := bytes.Clone(b)
	n := len(out) - manifestCRCLen
	binary.BigEndian.PutUint32(out[n:], crc32.Checksum(out[:n], manifestCRCTable))
	return out
}

// cdcEncodeUnchecked encodes m without validating it, to test that decoding
// rejects what a buggy or hostile writer could produce.
func cdcEncodeUnchecked(m *Manifest) []byte {
	var e mfEncoder
	e.manifest(m)
	return frameManifest(e.buf)
}

func TestManifestCodecRoundTrip(t *testing.T) {
	ms := map[string]*Manifest{"rich": cdcRichManifest(), "minimal": cdcMinimalManifest()}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		ms[fmt.Sprintf("random-%d", i)] = cdcRandomManifest(r)
	}
	for name, m := range ms {
		b := cdcMustEncode(t, m)
		got, err := DecodeManifest(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: round trip differs\n got %#v\nwant %#v", name, got, m)
		}
		if b2 := cdcMustEncode(t, got); !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encoding differs", name)
		}
	}
}

// Empty slices and byte strings decode as nil: the documented normalisation.
func TestManifestCodecEmptyDecodesAsNil(t *testing.T) {
	m := &Manifest{Job: "j", Kind: KindCheckpoint, MaxParallelism: 4, Operators: []OperatorState{{
		Name: "op", Parallelism: 1, Subtasks: []SubtaskState{{
			Operator: "op", Keyed: []Handle{}, Positions: []SourcePosition{{Split: "s", Position: []byte{}}},
			Committables: []Committable{{Data: []byte{}}}, Values: []NamedValue{{Name: "v", Data: []byte{}}},
		}},
	}}}
	got, err := DecodeManifest(cdcMustEncode(t, m))
	if err != nil {
		t.Fatal(err)
	}
	st := got.Operators[0].Subtasks[0]
	if st.Keyed != nil || st.Positions[0].Position != nil || st.Committables[0].Data != nil || st.Values[0].Data != nil {
		t.Fatalf("empty slices did not decode as nil: %#v", st)
	}
	empty, err := DecodeManifest(cdcMustEncode(t, &Manifest{Job: "j", Kind: KindCheckpoint, MaxParallelism: 1, Operators: []OperatorState{}}))
	if err != nil || empty.Operators != nil {
		t.Fatalf("empty operators: %#v, %v", empty, err)
	}
}

// TestManifestCodecGolden pins format version 1: manifests written by this
// build must stay readable by every later one, so a change here must be a new
// format version, not an edit of this constant.
func TestManifestCodecGolden(t *testing.T) {
	m := &Manifest{Job: "wc", ID: 3, Kind: KindCheckpoint, CreatedUnixMilli: 1700000000000, MaxParallelism: 4,
		Operators: []OperatorState{{Name: "op", Parallelism: 1, Subtasks: []SubtaskState{{
			Operator: "op", KeyGroups: KeyGroupRange{0, 4},
			Keyed:        []Handle{{Name: "wc/data/00000000000000000003/a", Size: 300, CRC32C: 0xdeadbeef, KeyGroups: KeyGroupRange{1, 4}}},
			Positions:    []SourcePosition{{Split: "t-0", Position: []byte{7}}},
			Committables: []Committable{{CheckpointID: 2, Data: []byte("tx")}},
			Values:       []NamedValue{{Name: "n", Data: []byte{1}}},
		}}}}}
	const golden = "4f46434b4d460001" + "51" + // magic, version 1, body length 81
		"02776303" + "01" + "80a0abfef962" + "04" + "01" + // job, id, kind, created, max parallelism, 1 operator
		"026f70" + "01" + "01" + // name, parallelism, 1 subtask
		"026f70" + "00" + "0004" + // operator, subtask, key groups
		"01" + "1e77632f646174612f30303030303030303030303030303030303030332f61" + "ac02" + "deadbeef" + "0104" +
		"01" + "03742d30" + "0107" +
		"01" + "02" + "027478" +
		"01" + "016e" + "0101" +
		"5508a935" // crc32c (checked against an independent implementation)
	b := cdcMustEncode(t, m)
	if got := hex.EncodeToString(b); got != golden {
		t.Fatalf("encoding changed:\n got %s\nwant %s", got, golden)
	}
	want, _ := hex.DecodeString(golden)
	got, err := DecodeManifest(want)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("golden decode: %v\n%#v", err, got)
	}
}

// Every flipped bit and every truncation of an encoding is detected.
func TestManifestCodecDetectsCorruption(t *testing.T) {
	for name, m := range map[string]*Manifest{"rich": cdcRichManifest(), "minimal": cdcMinimalManifest()} {
		b := cdcMustEncode(t, m)
		for i := range b {
			for bit := range 8 {
				c := bytes.Clone(b)
				c[i] ^= 1 << bit
				if _, err := DecodeManifest(c); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("%s: bit %d of byte %d flipped: err = %v, want ErrCorrupt", name, bit, i, err)
				}
			}
		}
		for n := range len(b) {
			if _, err := DecodeManifest(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%s: truncated to %d bytes: err = %v, want ErrCorrupt", name, n, err)
			}
		}
		if _, err := DecodeManifest(append(bytes.Clone(b), 0)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("%s: trailing byte: err = %v", name, err)
		}
	}
}

// The reasons are precise enough to act on.
func TestManifestCodecErrors(t *testing.T) {
	good := cdcMustEncode(t, cdcMinimalManifest())
	body := func(b ...byte) []byte { return frameManifest(b) }
	set := func(i int, v byte) []byte { c := bytes.Clone(good); c[i] = v; return c }
	// A manifest whose one source position claims more bytes than are left.
	var nested mfEncoder
	nested.str("j")
	nested.uv(0)
	nested.buf = append(nested.buf, byte(KindCheckpoint), 0)
	nested.int(1)               // max parallelism
	nested.int(1)               // operators
	nested.str("a")             // name
	nested.int(1)               // parallelism
	nested.int(1)               // subtasks
	nested.str("a")             // operator
	nested.int(0)               // subtask
	nested.kgr(KeyGroupRange{}) // key groups
	nested.int(0)               // keyed
	nested.int(1)               // positions
	nested.str("s")             // split
	nested.uv(50)               // position length, and no bytes
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated at byte 0 (in the magic)"},
		{"short magic", []byte("OFC"), "truncated at byte 3 (in the magic)"},
		{"bad magic", []byte("PK\x03\x04 a zip file"), `bad magic "PK\x03\x04 a"`},
		{"no version", []byte("OFCKMF\x00"), "truncated at byte 7 (in the format version)"},
		{"future version", set(7, 7), "unknown format version 7 (this build reads 1)"},
		{"no body length", good[:8], "truncated at byte 8 (reading body length)"},
		{"body length too long", set(8, 0x7f), "truncated at byte"},
		{"checksum", set(len(good)-1, good[len(good)-1]^1), "checksum mismatch"},
		{"body flipped", set(10, good[10]^0x20), "checksum mismatch"},
		{"trailing", append(bytes.Clone(good), 1, 2), "2 trailing bytes after the checksum"},
		{"truncated body", body(1, 'j'), "truncated at byte"},
		{"non-canonical varint", body(0x81, 0x00), "non-canonical varint at byte 9 (reading job)"},
		{"overflowing varint", body(bytes.Repeat([]byte{0xff}, 11)...), "varint overflows 64 bits"},
		{"absurd count", body(1, 'j', 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f), "count 4294967295 at byte 15 cannot fit"},
		{"string past end", body(0x7f, 'j'), "length 127 at byte 9, 1 bytes left"},
		{"unread body", body(1, 'j', 0, 1, 0, 1, 0, 9), "1 unread bytes at the end of the body"},
		{"invalid", cdcEncodeUnchecked(&Manifest{Job: "j", Kind: 3, MaxParallelism: 1}), "checksum is correct but the manifest is invalid: manifest 0 of job \"j\": unknown kind 3"},
		{"nested path", frameManifest(nested.buf), "truncated at byte 30 (length 50 at byte 29, 0 bytes left) (reading operators[0].subtasks[0].positions[0].position)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeManifest(tc.data)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v\nwant ErrCorrupt containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(m *Manifest)
		want   string
	}{
		{"ok", func(*Manifest) {}, ""},
		{"job with slash", func(m *Manifest) { m.Job = "a/b" }, "single path segment"},
		{"empty job", func(m *Manifest) { m.Job = "" }, "empty job name"},
		{"unknown kind", func(m *Manifest) { m.Kind = 0 }, "unknown kind 0"},
		{"max parallelism", func(m *Manifest) { m.MaxParallelism = 0 }, "max parallelism 0 < 1"},
		{"unsorted", func(m *Manifest) { m.Operators[0], m.Operators[1] = m.Operators[1], m.Operators[0] }, "not sorted and unique"},
		{"duplicate operator", func(m *Manifest) { m.Operators[1] = m.Operators[0] }, `"count" then "count"`},
		{"empty operator name", func(m *Manifest) { m.Operators[0].Name = "" }, "operator 0 has an empty name"},
		{"parallelism vs subtasks", func(m *Manifest) { m.Operators[0].Parallelism = 3 }, "2 subtasks for parallelism 3"},
		{"parallelism over max", func(m *Manifest) { m.MaxParallelism, m.Operators = 2, m.Operators[2:] }, "parallelism 3 outside [1, max parallelism 2]"},
		{"subtask order", func(m *Manifest) { m.Operators[2].Subtasks[1].Subtask = 2 }, "subtask at position 1 has index 2"},
		{"subtask operator", func(m *Manifest) { m.Operators[1].Subtasks[0].Operator = "count" }, `subtask 0 belongs to operator "count"`},
		{"key groups past max", func(m *Manifest) { m.Operators[0].Subtasks[1].KeyGroups.End = 129 }, "key groups [64,129) not a range within [0,128)"},
		{"negative key group", func(m *Manifest) { m.Operators[0].Subtasks[0].KeyGroups.Start = -1 }, "[-1,64)"},
		{"reversed key groups", func(m *Manifest) { m.Operators[2].Subtasks[1].KeyGroups = KeyGroupRange{6, 5} }, "[6,5)"},
		{"overlapping subtasks", func(m *Manifest) { m.Operators[0].Subtasks[1].KeyGroups.Start = 63 }, "overlapping key groups [0,64) and [63,128)"},
		{"handle key groups", func(m *Manifest) { m.Operators[0].Subtasks[0].Keyed[1].KeyGroups.End = 200 }, "a.sst: key groups"},
		{"handle name", func(m *Manifest) { m.Operators[0].Subtasks[0].Keyed[1].Name = "../x" }, `object name "../x"`},
		{"negative size", func(m *Manifest) { m.Operators[0].Subtasks[0].Keyed[1].Size = -1 }, "negative size -1"},
		{"inconsistent object", func(m *Manifest) { m.Operators[0].Subtasks[1].Keyed[0].CRC32C = 1 }, "referenced twice with different contents"},
		{"duplicate split", func(m *Manifest) { m.Operators[2].Subtasks[0].Positions[1].Split = "lines-0" }, `two positions for source split "lines-0"`},
		{"duplicate value", func(m *Manifest) { m.Operators[0].Subtasks[0].Values[1].Name = "timers" }, `two values named "timers"`},
		{"future committable", func(m *Manifest) { m.ID = 4 }, "committable of checkpoint 99 in the manifest of 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := cdcRichManifest()
			m.ID = 100
			m.Operators[1].Subtasks[0].Committables[1].CheckpointID = 99
			tc.mutate(m)
			err := m.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			// An invalid manifest is neither written nor trusted when read.
			if _, err := EncodeManifest(m); err == nil {
				t.Fatal("EncodeManifest accepted an invalid manifest")
			}
			// (Negative ints, written as huge uvarints, fail earlier as
			// out of range: ErrCorrupt all the same.)
			if _, err := DecodeManifest(cdcEncodeUnchecked(m)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeManifest of invalid manifest: %v", err)
			}
		})
	}
	var nilManifest *Manifest
	if err := nilManifest.Validate(); err == nil {
		t.Fatal("nil manifest validated")
	}
}

// Many small repeated elements are validated in linear time (duplicates are
// found through a set, not pairwise).
func TestManifestValidateManyValues(t *testing.T) {
	m := cdcMinimalManifest()
	st := SubtaskState{Operator: "op"}
	for i := range 100000 {
		st.Values = append(st.Values, NamedValue{Name: fmt.Sprint(i)})
	}
	st.Values = append(st.Values, NamedValue{Name: "99999"})
	m.Operators = []OperatorState{{Name: "op", Parallelism: 1, Subtasks: []SubtaskState{st}}}
	if err := m.Validate(); err == nil || !strings.Contains(err.Error(), `two values named "99999"`) {
		t.Fatalf("err = %v", err)
	}
}
