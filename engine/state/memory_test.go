package state

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
)

// objects is a minimal Uploader/Downloader over a map, for unit tests of the
// pure snapshot format (the engine's real ones are tested with real stores).
type objects map[string][]byte

func (o objects) Upload(_ context.Context, name string, r io.Reader, _ int64) (checkpoint.Handle, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return checkpoint.Handle{}, err
	}
	o[name] = data
	return checkpoint.Handle{Name: name, Size: int64(len(data)), CRC32C: crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))}, nil
}

func (o objects) Open(_ context.Context, h checkpoint.Handle) (io.ReadCloser, error) {
	data, ok := o[h.Name]
	if !ok {
		return nil, fmt.Errorf("%s: %w", h.Name, checkpoint.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func info(p, i, maxPar int) SubtaskInfo {
	start, end := (i*maxPar+p-1)/p, ((i+1)*maxPar+p-1)/p
	return SubtaskInfo{Job: "j", Operator: "op", Subtask: i, Parallelism: p, MaxParallelism: maxPar,
		KeyGroups: checkpoint.KeyGroupRange{Start: start, End: end}}
}

func TestTypedStatesOnMemory(t *testing.T) {
	ctx := context.Background()
	b, err := Memory.New(ctx, info(1, 0, 8), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := NewValue(b, "v", Int64)
	m, _ := NewMap(b, "m", String, Uint64)
	l, _ := NewList(b, "l", String)
	r, _ := NewReducing(b, "r", Int64, func(a, b int64) int64 { return a + b })
	if _, err := NewMap(b, "v", String, String); err == nil {
		t.Fatal("re-registering a value state as a map must fail")
	}
	b.SetCurrentKey(3, []byte("k1"))
	if _, ok, _ := v.Get(); ok {
		t.Fatal("fresh key has a value")
	}
	must(t, v.Set(41))
	must(t, m.Put("b", 2))
	must(t, m.Put("a", 1))
	must(t, l.Add("x"))
	must(t, l.Add("yy"))
	r.Add(5)
	r.Add(6)
	b.SetCurrentKey(5, []byte("k2"))
	must(t, v.Set(-7))
	b.SetCurrentKey(3, []byte("k1"))
	if got, ok, _ := v.Get(); !ok || got != 41 {
		t.Fatalf("value %d %v", got, ok)
	}
	var keys []string
	must(t, m.All(func(k string, v uint64) error { keys = append(keys, fmt.Sprint(k, "=", v)); return nil }))
	if fmt.Sprint(keys) != "[a=1 b=2]" {
		t.Fatalf("map %v", keys)
	}
	var elems []string
	must(t, l.All(func(s string) error { elems = append(elems, s); return nil }))
	if fmt.Sprint(elems) != "[x yy]" {
		t.Fatalf("list %v", elems)
	}
	if got, _, _ := r.Get(); got != 11 {
		t.Fatalf("reducing %d", got)
	}
	must(t, v.Clear())
	if _, ok, _ := v.Get(); ok {
		t.Fatal("cleared value still set")
	}
	b.SetCurrentKey(100, []byte("k"))
	if err := v.Set(1); err == nil {
		t.Fatal("a key group outside the subtask's range must be an error")
	}
}

// TestMemorySnapshotRescale checkpoints two subtasks and restores the state
// at parallelism 3: every key lands exactly once, in its new owner.
func TestMemorySnapshotRescale(t *testing.T) {
	ctx := context.Background()
	const maxPar, keys = 16, 200
	store := objects{}
	var handles []checkpoint.Handle
	for i := 0; i < 2; i++ {
		b, _ := Memory.New(ctx, info(2, i, maxPar), nil, nil)
		v, _ := NewValue(b, "count", Int64)
		for k := 0; k < keys; k++ {
			kg := k % maxPar
			if !info(2, i, maxPar).KeyGroups.Contains(kg) {
				continue
			}
			b.SetCurrentKey(kg, []byte(fmt.Sprint("key", k)))
			must(t, v.Set(int64(k)))
		}
		snap, err := b.Snapshot(1)
		must(t, err)
		// Changes after the synchronous part must not leak into the snapshot.
		b.SetCurrentKey(info(2, i, maxPar).KeyGroups.Start, []byte("late"))
		must(t, v.Set(-1))
		hs, err := snap.Upload(ctx, objectsWithPrefix{store, fmt.Sprint(i)})
		must(t, err)
		handles = append(handles, hs...)
	}
	seen := 0
	for i := 0; i < 3; i++ {
		inf := info(3, i, maxPar)
		var mine []checkpoint.Handle
		for _, h := range handles {
			if h.KeyGroups.Intersects(inf.KeyGroups) {
				mine = append(mine, h)
			}
		}
		b, err := Memory.New(ctx, inf, mine, store)
		must(t, err)
		v, _ := NewValue(b, "count", Int64)
		for k := 0; k < keys; k++ {
			kg := k % maxPar
			if !inf.KeyGroups.Contains(kg) {
				continue
			}
			b.SetCurrentKey(kg, []byte(fmt.Sprint("key", k)))
			got, ok, err := v.Get()
			if err != nil || !ok || got != int64(k) {
				t.Fatalf("subtask %d key %d: %d %v %v", i, k, got, ok, err)
			}
			seen++
		}
		b.SetCurrentKey(inf.KeyGroups.Start, []byte("late"))
		if _, ok, _ := v.Get(); ok {
			t.Fatal("a change made after the snapshot was restored")
		}
	}
	if seen != keys {
		t.Fatalf("restored %d keys, want %d", seen, keys)
	}
}

func TestMemoryRestoreRejectsGarbage(t *testing.T) {
	ctx := context.Background()
	store := objects{"bad": []byte("not a snapshot"), "trunc": append([]byte("OFMEMST1"), 0x05, 0x01)}
	for name := range store {
		_, err := Memory.New(ctx, info(1, 0, 4), []checkpoint.Handle{{Name: name, KeyGroups: checkpoint.KeyGroupRange{Start: 0, End: 4}}}, store)
		if err == nil {
			t.Fatalf("%s: restored garbage", name)
		}
	}
}

type objectsWithPrefix struct {
	o      objects
	prefix string
}

func (p objectsWithPrefix) Upload(ctx context.Context, name string, r io.Reader, size int64) (checkpoint.Handle, error) {
	return p.o.Upload(ctx, p.prefix+"/"+name, r, size)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func FuzzCodecs(f *testing.F) {
	f.Add([]byte{0x01})
	f.Add([]byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := Int64.Decode(b); err == nil && !bytes.Equal(Int64.Append(nil, v), b) {
			t.Fatalf("int64 %x -> %d does not re-encode", b, v)
		}
		if v, err := Uint64.Decode(b); err == nil && !bytes.Equal(Uint64.Append(nil, v), b) {
			t.Fatalf("uint64 %x -> %d does not re-encode", b, v)
		}
	})
}
