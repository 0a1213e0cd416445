package pebblestate

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// TestFirstBaseIsPebbleAsItIs: a new job's first checkpoint does not write
// its state into Pebble; its base is the empty database and its changelog
// segment carries the state. Later checkpoints add segments until the
// changelog reaches its bound (here MaxChangelogSegments), and that
// materialization rewrites the state into a base of its own. Each of these
// checkpoints restores the state it was taken at, also at another
// parallelism, whose first base is then the restored database (held by the
// restored checkpoint) plus the segments after it.
func TestFirstBaseIsPebbleAsItIs(t *testing.T) {
	h := memHarness(t)
	o := Options{Dir: t.TempDir(), MaxChangelogSegments: 3}
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	put := func(bs []state.Backend, round int) {
		t.Helper()
		for i := range 200 {
			k := fmt.Sprint("k", (i*7+round*13)%300)
			v := fmt.Sprint(round, "-", i)
			kg := kgOf(k, h.maxPar)
			b := bs[kg*len(bs)/h.maxPar]
			id, err := b.Register("v", state.KindValue)
			if err != nil {
				t.Fatal(err)
			}
			b.SetCurrentKey(kg, []byte(k))
			if err := b.Put(id, nil, []byte(v)); err != nil {
				t.Fatal(err)
			}
			want[k] = v
		}
	}
	type taken struct {
		m    *checkpoint.Manifest
		want map[string]string
	}
	var ckpts []taken
	expect := []struct {
		baseID   uint64
		segments int
		sst      bool
	}{
		{0, 1, false}, // Pebble as it is: empty
		{0, 2, false},
		{3, 0, true}, // the third segment reaches the bound: rewritten
		{3, 1, true},
	}
	for i, e := range expect {
		id := uint64(i + 1)
		put(bs, i)
		m := h.checkpoint(id, bs)
		meta := h.meta(m, 0)
		sst := false
		for _, f := range meta.Base {
			sst = sst || strings.HasSuffix(f.Name, ".sst")
		}
		if meta.BaseID != e.baseID || len(meta.Segments) != e.segments || sst != e.sst {
			t.Fatalf("checkpoint %d: base %d with SSTs %v and %d segments, want base %d with SSTs %v and %d segments",
				id, meta.BaseID, sst, len(meta.Segments), e.baseID, e.sst, e.segments)
		}
		snapshot := map[string]string{}
		for k, v := range want {
			snapshot[k] = v
		}
		ckpts = append(ckpts, taken{m, snapshot})
	}
	closeAll(t, bs)

	check := func(bs []state.Backend, want map[string]string, what string) {
		t.Helper()
		for k, v := range want {
			kg := kgOf(k, h.maxPar)
			b := bs[kg*len(bs)/h.maxPar]
			id, err := b.Register("v", state.KindValue)
			if err != nil {
				t.Fatal(err)
			}
			b.SetCurrentKey(kg, []byte(k))
			got, ok, err := b.Get(id, nil)
			if err != nil || !ok || string(got) != v {
				t.Fatalf("%s: key %s = %q %v %v, want %q", what, k, got, ok, err, v)
			}
		}
	}
	for i, c := range ckpts {
		for _, par := range []int{1, 2} {
			bs, err := h.restore(c.m, par, o)
			if err != nil {
				t.Fatalf("restore checkpoint %d at parallelism %d: %v", i+1, par, err)
			}
			what := fmt.Sprintf("checkpoint %d restored at parallelism %d", i+1, par)
			check(bs, c.want, what)
			if par == 2 {
				// Rescaled: the next checkpoint's base is the restored
				// database, which holds checkpoint i+1.
				want = c.want
				put(bs, 10+i)
				id := uint64(100 + 10*i)
				m := h.checkpoint(id, bs)
				for sub := range bs {
					if meta := h.meta(m, sub); meta.BaseID != uint64(i+1) || len(meta.Segments) != 1 {
						t.Fatalf("%s, then checkpoint %d: subtask %d has base %d and %d segments, want base %d and 1 segment",
							what, id, sub, meta.BaseID, len(meta.Segments), i+1)
					}
				}
				closeAll(t, bs)
				again, err := h.restore(m, 1, o)
				if err != nil {
					t.Fatalf("restore checkpoint %d: %v", id, err)
				}
				check(again, want, fmt.Sprintf("%s, then checkpoint %d restored", what, id))
				closeAll(t, again)
				continue
			}
			closeAll(t, bs)
		}
	}
}

// meta reads the snapshot description of subtask sub in m.
func (h *harness) meta(m *checkpoint.Manifest, sub int) *snapMeta {
	h.t.Helper()
	hs := m.Operators[0].Subtasks[sub].Keyed
	r, err := (&downloader{h: h}).Open(context.Background(), hs[len(hs)-1])
	if err != nil {
		h.t.Fatal(err)
	}
	defer r.Close()
	data := new(strings.Builder)
	if _, err := io.Copy(data, r); err != nil {
		h.t.Fatal(err)
	}
	meta, err := decodeMeta([]byte(data.String()))
	if err != nil {
		h.t.Fatal(err)
	}
	return meta
}
