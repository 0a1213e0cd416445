package pebblestate

import (
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// model is the expected content of a job's keyed state: per key, its value
// state and its map state.
type model struct {
	values map[string]string            // key -> value
	maps   map[string]map[string]string // key -> user key -> value
}

func newModel() *model {
	return &model{values: map[string]string{}, maps: map[string]map[string]string{}}
}

func (m *model) clone() *model {
	c := newModel()
	maps.Copy(c.values, m.values)
	for k, v := range m.maps {
		c.maps[k] = maps.Clone(v)
	}
	return c
}

func kgOf(key string, maxPar int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(maxPar))
}

type states struct{ val, mp state.ID }

func register(t testing.TB, b state.Backend) states {
	t.Helper()
	v, err := b.Register("v", state.KindValue)
	if err != nil {
		t.Fatal(err)
	}
	m, err := b.Register("m", state.KindMap)
	if err != nil {
		t.Fatal(err)
	}
	return states{v, m}
}

// verify reads every key of the universe and compares with the model.
func verify(t testing.TB, bs []state.Backend, ids []states, m *model, keys int, maxPar int, when string) {
	t.Helper()
	for i := 0; i < keys; i++ {
		key := fmt.Sprint("k", i)
		kg := kgOf(key, maxPar)
		sub := kg * len(bs) / maxPar
		b := bs[sub]
		b.SetCurrentKey(kg, []byte(key))
		v, ok, err := b.Get(ids[sub].val, nil)
		if err != nil {
			t.Fatalf("%s: get %s: %v", when, key, err)
		}
		want, wok := m.values[key]
		if ok != wok || string(v) != want {
			t.Fatalf("%s: key %s: value %q (%v), want %q (%v)", when, key, v, ok, want, wok)
		}
		got := map[string]string{}
		var order []string
		err = b.Scan(ids[sub].mp, func(uk, v []byte) error {
			got[string(uk)] = string(v)
			order = append(order, string(uk))
			return nil
		})
		if err != nil {
			t.Fatalf("%s: scan %s: %v", when, key, err)
		}
		if !slices.IsSorted(order) {
			t.Fatalf("%s: key %s: scan out of order: %q", when, key, order)
		}
		wm := m.maps[key]
		if len(wm) == 0 {
			wm = map[string]string{}
		}
		if !maps.Equal(got, wm) {
			t.Fatalf("%s: key %s: map %v, want %v", when, key, got, wm)
		}
	}
}

// TestModel runs random value and map operations with snapshots, restores
// and rescalings in between, against a model: a tiny write cache makes the
// record path spill and evict, so every path (dirty, frozen, clean, spilled,
// Pebble, partly warmed) is exercised; a big one holds the whole state, so
// a miss is an absent key and restores load everything into the cache.
func TestModel(t *testing.T) {
	for _, cache := range []int64{32 << 10, 64 << 20} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			h := memHarness(t)
			rng := rand.New(rand.NewPCG(uint64(cache), 1))
			const keys = 300
			dirs := t.TempDir()
			o := Options{Dir: dirs, WriteCacheSize: cache, MaterializeRatio: 0.5, MaxChangelogSegments: 4}
			par := 2
			bs, err := h.restore(nil, par, o)
			if err != nil {
				t.Fatal(err)
			}
			ids := make([]states, par)
			for i, b := range bs {
				ids[i] = register(t, b)
			}
			m := newModel()
			snaps := map[uint64]*model{}
			manifests := map[uint64]*checkpoint.Manifest{}
			var id uint64
			var completeRestores, partialRestores int
			for step := 0; step < 2500; step++ {
				key := fmt.Sprint("k", rng.IntN(keys))
				kg := kgOf(key, h.maxPar)
				sub := kg * par / h.maxPar
				b := bs[sub]
				b.SetCurrentKey(kg, []byte(key))
				switch r := rng.IntN(100); {
				case r < 35:
					v := fmt.Sprint(rng.IntN(1000))
					if err := b.Put(ids[sub].val, nil, []byte(v)); err != nil {
						t.Fatal(err)
					}
					m.values[key] = v
				case r < 45:
					if err := b.Delete(ids[sub].val, nil); err != nil {
						t.Fatal(err)
					}
					delete(m.values, key)
				case r < 70:
					uk, v := fmt.Sprint("u", rng.IntN(8)), fmt.Sprint(rng.IntN(1000))
					if err := b.Put(ids[sub].mp, []byte(uk), []byte(v)); err != nil {
						t.Fatal(err)
					}
					if m.maps[key] == nil {
						m.maps[key] = map[string]string{}
					}
					m.maps[key][uk] = v
				case r < 80:
					uk := fmt.Sprint("u", rng.IntN(8))
					if err := b.Delete(ids[sub].mp, []byte(uk)); err != nil {
						t.Fatal(err)
					}
					delete(m.maps[key], uk)
				case r < 96:
					v, ok, err := b.Get(ids[sub].val, nil)
					if err != nil {
						t.Fatal(err)
					}
					if want, wok := m.values[key]; ok != wok || string(v) != want {
						t.Fatalf("step %d: get %s = %q %v, want %q %v", step, key, v, ok, want, wok)
					}
					// Read-modify-write, as counters do: Put (or Delete)
					// right after the Get of the same key.
					switch rng.IntN(3) {
					case 0:
						nv := string(v) + "+"
						if err := b.Put(ids[sub].val, nil, []byte(nv)); err != nil {
							t.Fatal(err)
						}
						m.values[key] = nv
					case 1:
						if err := b.Delete(ids[sub].val, nil); err != nil {
							t.Fatal(err)
						}
						delete(m.values, key)
					}
				case r < 98:
					id++
					manifests[id] = h.checkpoint(id, bs)
					snaps[id] = m.clone()
				default:
					if id == 0 {
						continue
					}
					// Restore a random retained checkpoint, possibly at
					// another parallelism.
					from := id - uint64(rng.IntN(min(int(id), 2)))
					closeAll(t, bs)
					par = 1 + rng.IntN(4)
					if bs, err = h.restore(manifests[from], par, o); err != nil {
						t.Fatalf("restore checkpoint %d at parallelism %d: %v", from, par, err)
					}
					ids = make([]states, par)
					for i, b := range bs {
						ids[i] = register(t, b)
						// The big cache takes the whole restored state
						// (reads never go to Pebble); the tiny one
						// soon only part of it.
						if b.(*backend).complete {
							completeRestores++
						} else if cache > 1<<20 {
							t.Fatalf("step %d: restored cache not complete with a budget of %d bytes", step, cache)
						} else {
							partialRestores++
						}
					}
					m = snaps[from].clone()
					verify(t, bs, ids, m, keys, h.maxPar, fmt.Sprintf("step %d after restoring %d at p=%d", step, from, par))
				}
			}
			verify(t, bs, ids, m, keys, h.maxPar, "end")
			closeAll(t, bs)
			t.Logf("restored subtasks: %d with the whole state in the cache, %d with part of it", completeRestores, partialRestores)
			if completeRestores == 0 || (cache < 1<<20 && partialRestores == 0) {
				t.Fatalf("a restore path was not taken")
			}
		})
	}
}
