package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/onceflow/onceflow/engine/state/pebblestate"
)

const measureFor = 2 * time.Second

// getPut measures, in one run: random point gets on a compacted raw Pebble
// database of *keys keys with and without bloom filters and block cache
// (present and absent keys), raw Pebble get+set (a counter update), and the
// same counter update through the Pebble state backend with a write cache
// that holds every key and one that holds a tenth of them.
func getPut(dir string) error {
	n := *keys
	fmt.Printf("%d keys, 8-byte values, random keys; each cell measured for %v\n\n", n, measureFor)
	fmt.Println("| operation | ops/s | ratio to raw get (bloom, cache) |")
	fmt.Println("|---|---:|---:|")
	var base float64
	row := func(name string, ops float64) {
		if base == 0 {
			base = ops
		}
		fmt.Printf("| %s | %.0f | %.2f |\n", name, ops, ops/base)
	}
	for _, v := range []struct {
		name  string
		bloom bool
		cache int64
	}{{"raw get, bloom + 64 MiB block cache", true, 64 << 20}, {"raw get, no bloom, 64 MiB block cache", false, 64 << 20},
		{"raw get, bloom, 1 MiB block cache", true, 1 << 20}, {"raw get, no bloom, 1 MiB block cache", false, 1 << 20}} {
		db, cache, err := compactedDB(filepath.Join(dir, v.name), n, v.bloom, v.cache)
		if err != nil {
			return err
		}
		present, absent, err := rawGets(db, n)
		if err == nil {
			row(v.name+" (present keys)", present)
			row(v.name+" (absent keys)", absent)
			if v.bloom && v.cache > 1<<20 {
				var upd float64
				upd, err = rawUpdates(db, n)
				row("raw get+set (counter update, bloom, 64 MiB cache)", upd)
			}
		}
		db.Close()
		cache.Unref()
		if err != nil {
			return err
		}
	}
	for _, cacheSize := range cacheSizes(n) {
		ops, err := backendUpdates(filepath.Join(dir, fmt.Sprint("backend-", cacheSize)), n, cacheSize)
		if err != nil {
			return err
		}
		row(fmt.Sprintf("pebblestate counter update, write cache %d MiB", cacheSize>>20), ops)
	}
	return nil
}

func bkey(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

func compactedDB(dir string, n int, withBloom bool, cacheSize int64) (*pebble.DB, *pebble.Cache, error) {
	cache := pebble.NewCache(cacheSize)
	o := &pebble.Options{Cache: cache, DisableWAL: true, FormatMajorVersion: pebble.FormatNewest, Logger: quietPebble{}}
	if withBloom {
		for i := range o.Levels {
			o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		}
	}
	db, err := pebble.Open(dir, o)
	if err != nil {
		cache.Unref()
		return nil, nil, err
	}
	b := db.NewBatch()
	for i := 0; i < n; i++ {
		// Even keys only: odd keys are the absent ones.
		b.Set(bkey(2*i), bkey(i), nil)
		if b.Len() > 1<<20 {
			if err := b.Commit(pebble.NoSync); err != nil {
				return nil, nil, err
			}
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, nil, err
	}
	if err := db.Compact(context.Background(), bkey(0), bkey(2*n+1), true); err != nil {
		return nil, nil, err
	}
	return db, cache, nil
}

func rawGets(db *pebble.DB, n int) (present, absent float64, err error) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, odd := range []int{0, 1} {
		ops := 0
		start := time.Now()
		for time.Since(start) < measureFor {
			for j := 0; j < 1000; j++ {
				v, c, err := db.Get(bkey(2*rng.IntN(n) + odd))
				if err == nil {
					_ = v
					c.Close()
				} else if err != pebble.ErrNotFound {
					return 0, 0, err
				}
			}
			ops += 1000
		}
		r := float64(ops) / time.Since(start).Seconds()
		if odd == 0 {
			present = r
		} else {
			absent = r
		}
	}
	return present, absent, nil
}

func rawUpdates(db *pebble.DB, n int) (float64, error) {
	rng := rand.New(rand.NewPCG(2, 2))
	ops := 0
	start := time.Now()
	var buf []byte
	for time.Since(start) < measureFor {
		for j := 0; j < 1000; j++ {
			k := bkey(2 * rng.IntN(n))
			v, c, err := db.Get(k)
			if err != nil {
				return 0, err
			}
			buf = binary.BigEndian.AppendUint64(buf[:0], binary.BigEndian.Uint64(v)+1)
			c.Close()
			if err := db.Set(k, buf, pebble.NoSync); err != nil {
				return 0, err
			}
		}
		ops += 1000
	}
	return float64(ops) / time.Since(start).Seconds(), nil
}

// backendUpdates loads n keys into the backend, then measures random
// counter updates (Get+Put through the typed layer). No snapshots: what the
// write cache cannot hold is spilled to Pebble on the record path.
func backendUpdates(dir string, n int, cacheSize int64) (float64, error) {
	f := pebblestate.New(pebblestate.Options{Dir: dir, WriteCacheSize: cacheSize, Logger: quietLogger()})
	b, err := f.New(ctxBG, subtaskInfo(), nil, nil)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	c, err := newCounter(b)
	if err != nil {
		return 0, err
	}
	for k := 0; k < n; k++ {
		if err := c.add(uint64(k)); err != nil {
			return 0, err
		}
	}
	rng := rand.New(rand.NewPCG(3, 3))
	ops := 0
	start := time.Now()
	for time.Since(start) < measureFor {
		for j := 0; j < 1000; j++ {
			if err := c.add(rng.Uint64N(uint64(n))); err != nil {
				return 0, err
			}
		}
		ops += 1000
	}
	return float64(ops) / time.Since(start).Seconds(), nil
}

// cacheSizes are the write caches backendUpdates tries: one holding every
// key, one holding a tenth (-getput-cache overrides).
func cacheSizes(n int) []int64 {
	if *getputCache != 0 {
		return []int64{*getputCache}
	}
	return []int64{int64(n) * 256, int64(n) * 256 / 10}
}

// quietPebble drops Pebble's informational log lines.
type quietPebble struct{}

func (quietPebble) Infof(string, ...any)  {}
func (quietPebble) Errorf(string, ...any) {}
func (quietPebble) Fatalf(format string, args ...any) {
	fail(fmt.Errorf("pebble: "+format, args...))
}
