package main

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
)

// largerThanMemory counts *ltmKeys distinct keys (then *ltmOps random
// updates) on the Pebble backend with small caches, checkpointing every
// second, and reports the resident memory (sampled every 50ms, and the
// kernel's high-water mark) against the size of the state on disk.
func largerThanMemory(dir string) error {
	o := pebblestate.Options{
		Dir: filepath.Join(dir, "state"), WriteCacheSize: 32 << 20, BlockCacheSize: 32 << 20, MemTableSize: 16 << 20,
		Logger: quietLogger(),
	}
	store, err := fsstore.Open(filepath.Join(dir, "store"))
	if err != nil {
		return err
	}
	f := pebblestate.New(o)
	if *ltmMemory {
		// The reference: the same keys in the in-memory backend, without
		// checkpoints (serializing it every second would dominate).
		f = state.Memory
	}
	b, err := f.New(ctxBG, subtaskInfo(), nil, nil)
	if err != nil {
		return err
	}
	defer b.Close()
	c, err := newCounter(b)
	if err != nil {
		return err
	}
	var peak atomic.Int64 // KiB
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if r := int64(rssMiB() * 1024); r > peak.Load() {
				peak.Store(r)
			}
			select {
			case <-t.C:
			case <-stop:
				return
			}
		}
	}()
	start := time.Now()
	next := start.Add(time.Second)
	var id uint64
	var uploaded int64
	checkpoint := func() error {
		id++
		_, n, _, _, err := snapshotTo(b, store, id)
		uploaded += n
		next = time.Now().Add(time.Second)
		return err
	}
	n := uint64(*ltmKeys)
	rng := rand.New(rand.NewPCG(5, 5))
	total := n + uint64(*ltmOps)
	for i := uint64(0); i < total; i++ {
		k := i
		if i >= n {
			k = rng.Uint64N(n)
		}
		if err := c.add(k); err != nil {
			return err
		}
		if i%4096 == 0 && !*ltmMemory && time.Now().After(next) {
			if err := checkpoint(); err != nil {
				return err
			}
		}
	}
	if err := checkpoint(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	close(stop)
	<-done
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	dbBytes := dirSize(filepath.Join(o.Dir))
	if *ltmMemory {
		fmt.Printf("memory backend (reference): %d distinct keys counted, then %d random updates, no checkpoints\n\n", n, *ltmOps)
	} else {
		fmt.Printf("%d distinct keys counted, then %d random updates; write cache %d MiB, block cache %d MiB, memtable %d MiB; checkpoint every second (%d, fsstore)\n\n",
			n, *ltmOps, o.WriteCacheSize>>20, o.BlockCacheSize>>20, o.MemTableSize>>20, id)
	}
	fmt.Println("| keys | updates/s | peak RSS (sampled) MiB | max RSS (kernel) MiB | Go heap in use at end MiB | local state dir MiB | uploaded MiB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Printf("| %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", n, float64(total)/elapsed.Seconds(), float64(peak.Load())/1024,
		benchkit.MaxRSSMiB(), mib(int64(ms.HeapInuse)), mib(dbBytes), mib(uploaded))
	return nil
}

func dirSize(root string) int64 {
	var n int64
	filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
