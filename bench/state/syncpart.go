package main

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
)

// snapshotSync drives a keyed counter over *keys keys on the Pebble backend
// directly, checkpointing every second with the upload running concurrently
// (as the engine does), and reports the duration of the synchronous part
// and the longest stall of a single update on the record path.
func snapshotSync(dir string) error {
	fmt.Printf("keyed counter, %d keys (all in state), random updates, a snapshot every second, uploads concurrent (fsstore); the memory backend in the same run for reference\n\n", *keys)
	fmt.Println("| backend | snapshots | sync part p50 | p99 | max | updates/s | updates > 1ms (snapshot calls excluded) | longest |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, name := range []string{"pebble", "memory"} {
		f := state.Memory
		if name == "pebble" {
			f = pebblestate.New(pebblestate.Options{Dir: filepath.Join(dir, "state"), WriteCacheSize: 256 << 20, Logger: quietLogger()})
		}
		if err := syncRun(name, f, filepath.Join(dir, "store-"+name)); err != nil {
			return err
		}
	}
	return nil
}

func syncRun(name string, f state.Factory, storeDir string) error {
	store, err := fsstore.Open(storeDir)
	if err != nil {
		return err
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
	n := uint64(*keys)
	// Load every key once, then update at random for ~20 checkpoints.
	for k := uint64(0); k < n; k++ {
		if err := c.add(k); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var syncs, stalls []time.Duration
	var wg sync.WaitGroup
	var upErr error
	var upMu sync.Mutex
	start := time.Now()
	next := start.Add(time.Second)
	updates := 0
	for id := uint64(1); id <= 20; {
		t0 := time.Now()
		if err := c.add(rng.Uint64N(n)); err != nil {
			return err
		}
		updates++
		if d := time.Since(t0); d > time.Millisecond {
			stalls = append(stalls, d)
		}
		if t0.Before(next) {
			continue
		}
		t1 := time.Now()
		p, err := b.Snapshot(id)
		if err != nil {
			return err
		}
		syncs = append(syncs, time.Since(t1))
		wg.Add(1)
		go func(id uint64, p state.PendingSnapshot) {
			defer wg.Done()
			if _, err := p.Upload(ctxBG, &uploader{store: store, id: id, bytes: new(atomicInt)}); err != nil {
				upMu.Lock()
				upErr = err
				upMu.Unlock()
			}
		}(id, p)
		id++
		next = next.Add(time.Second)
	}
	elapsed := time.Since(start)
	wg.Wait()
	if upErr != nil {
		return upErr
	}
	slices.Sort(syncs)
	slices.Sort(stalls)
	pct := func(d []time.Duration, p float64) time.Duration {
		if len(d) == 0 {
			return 0
		}
		return d[min(len(d)-1, int(float64(len(d))*p))]
	}
	fmt.Printf("| %s | %d | %v | %v | %v | %.0f | %d | %v |\n", name, len(syncs), pct(syncs, 0.5), pct(syncs, 0.99), syncs[len(syncs)-1],
		float64(updates)/elapsed.Seconds(), len(stalls), pct(stalls, 1))
	return nil
}
