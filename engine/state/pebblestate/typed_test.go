package pebblestate

import (
	"reflect"
	"testing"

	"github.com/onceflow/onceflow/engine/state"
)

type session struct {
	User   string   `json:"user"`
	Clicks int      `json:"clicks"`
	Pages  []string `json:"pages"`
}

// TestTypedStates runs the typed layer's list, reducing and map states
// (with a JSON codec) over the Pebble backend, across a snapshot and a
// restore: operators see the same API whatever the backend.
func TestTypedStates(t *testing.T) {
	h := memHarness(t)
	o := Options{Dir: t.TempDir(), WriteCacheSize: 1 << 10} // spills too
	bs, err := h.restore(nil, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	open := func(b state.Backend) (*state.List[string], *state.Reducing[int64], *state.Map[string, session]) {
		l, err := state.NewList(b, "list", state.String)
		if err != nil {
			t.Fatal(err)
		}
		r, err := state.NewReducing(b, "sum", state.Int64, func(a, b int64) int64 { return a + b })
		if err != nil {
			t.Fatal(err)
		}
		m, err := state.NewMap(b, "sessions", state.String, state.JSON[session]())
		if err != nil {
			t.Fatal(err)
		}
		return l, r, m
	}
	l, r, m := open(bs[0])
	for i, key := range []string{"a", "b", "c"} {
		bs[0].SetCurrentKey(kgOf(key, h.maxPar), []byte(key))
		for j := 0; j <= i; j++ {
			if err := l.Add(key + "!"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.Add(int64(j + 1)); err != nil {
				t.Fatal(err)
			}
			if err := m.Put(string(rune('x'+j)), session{User: key, Clicks: j, Pages: []string{"p"}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	man := h.checkpoint(1, bs)
	closeAll(t, bs)
	bs, err = h.restore(man, 1, o)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(t, bs)
	l, r, m = open(bs[0])
	for i, key := range []string{"a", "b", "c"} {
		bs[0].SetCurrentKey(kgOf(key, h.maxPar), []byte(key))
		var items []string
		if err := l.All(func(s string) error { items = append(items, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(items) != i+1 {
			t.Fatalf("key %s: list %q, want %d items", key, items, i+1)
		}
		if sum, _, err := r.Get(); err != nil || sum != int64((i+1)*(i+2)/2) {
			t.Fatalf("key %s: sum %d, %v", key, sum, err)
		}
		var got []session
		if err := m.All(func(_ string, s session) error { got = append(got, s); return nil }); err != nil {
			t.Fatal(err)
		}
		if len(got) != i+1 || !reflect.DeepEqual(got[0], session{User: key, Pages: []string{"p"}}) {
			t.Fatalf("key %s: sessions %+v", key, got)
		}
	}
	// A state re-registered with another kind is refused, even before any
	// key is read: the checkpoint recorded its kind.
	if _, err := state.NewValue(bs[0], "sessions", state.String); err == nil {
		t.Fatal("map state re-registered as value state without error")
	}
}
