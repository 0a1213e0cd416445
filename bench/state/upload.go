package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
)

// uploads measures, for each state size and change rate, the bytes each
// checkpoint uploads and how long its parts take, with changelog snapshots
// (the default) and with SST-level snapshots only (every checkpoint
// materializes), then the restore time of the last checkpoint with and
// without local recovery.
func uploads(dir string) error {
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
		ns = append(ns, n)
	}
	const later = 6 // checkpoints after the first
	fmt.Printf("keyed counter state; checkpoint 1 after loading every key, then %d checkpoints each after changing the given share of keys at random; store: local fsstore\n\n", later)
	fmt.Println("| keys | changed per checkpoint | snapshots | checkpoint 1 MiB | checkpoint 2 MiB | 2 / 1 | mean of 2..7 / 1 | max of 2..7 / 1 | sync part max | async part mean (2..7) |")
	fmt.Println("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
	var restoreRows []string
	for _, n := range ns {
		for _, rate := range rates() {
			for _, mode := range []string{"changelog", "sst-only"} {
				if *restoreOnly && mode != "changelog" {
					continue
				}
				o := pebblestate.Options{Dir: filepath.Join(dir, "state"), WriteCacheSize: 256 << 20, Logger: quietLogger()}
				if mode == "sst-only" {
					o.MaterializeRatio = 1e-12
				}
				storeDir := filepath.Join(dir, "store")
				r, err := uploadRun(o, storeDir, n, rate, later)
				if err != nil {
					return fmt.Errorf("%d keys, %v, %s: %w", n, rate, mode, err)
				}
				fmt.Printf("| %d | %.1f%% | %s | %.1f | %.2f | %.2f%% | %.2f%% | %.2f%% | %v | %v |\n", n, 100*rate, mode,
					mib(r.bytes[0]), mib(r.bytes[1]), 100*float64(r.bytes[1])/float64(r.bytes[0]),
					100*r.meanLater()/float64(r.bytes[0]), 100*float64(r.maxLater())/float64(r.bytes[0]),
					r.maxSync.Round(time.Microsecond), r.meanAsync().Round(time.Millisecond))
				if mode == "changelog" && rate == 0.01 {
					row, err := restoreRun(o, storeDir, r.last)
					if err != nil {
						return fmt.Errorf("restore %d keys: %w", n, err)
					}
					restoreRows = append(restoreRows, fmt.Sprintf("| %d | %.1f | %s", n, mib(r.bytes[0]), row))
				}
				os.RemoveAll(o.Dir)
				os.RemoveAll(storeDir)
			}
		}
	}
	fmt.Printf("\nrestore of the last checkpoint of the 1%% changelog runs (base + changelog replay), parallelism 1\n\n")
	fmt.Println("| keys | base MiB | local recovery: restore | slowest of first 1000 updates | downloaded MiB | no local copy: restore | slowest of first 1000 | downloaded MiB | ingested changelog MiB |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range restoreRows {
		fmt.Println(r)
	}
	return nil
}

type uploadResult struct {
	bytes   []int64
	async   []time.Duration
	maxSync time.Duration
	last    []checkpoint.Handle
}

func (r uploadResult) meanLater() float64 {
	var s int64
	for _, b := range r.bytes[1:] {
		s += b
	}
	return float64(s) / float64(len(r.bytes)-1)
}

func (r uploadResult) maxLater() int64 {
	var m int64
	for _, b := range r.bytes[1:] {
		m = max(m, b)
	}
	return m
}

func (r uploadResult) meanAsync() time.Duration {
	var s time.Duration
	for _, d := range r.async[1:] {
		s += d
	}
	return s / time.Duration(len(r.async)-1)
}

func uploadRun(o pebblestate.Options, storeDir string, n int, rate float64, later int) (uploadResult, error) {
	var r uploadResult
	store, err := fsstore.Open(storeDir)
	if err != nil {
		return r, err
	}
	b, err := pebblestate.New(o).New(ctxBG, subtaskInfo(), nil, nil)
	if err != nil {
		return r, err
	}
	defer b.Close()
	c, err := newCounter(b)
	if err != nil {
		return r, err
	}
	for k := 0; k < n; k++ {
		if err := c.add(uint64(k)); err != nil {
			return r, err
		}
	}
	rng := rand.New(rand.NewPCG(uint64(n), 9))
	for id := uint64(1); id <= uint64(later)+1; id++ {
		if id > 1 {
			for i := 0; i < int(float64(n)*rate); i++ {
				if err := c.add(rng.Uint64N(uint64(n))); err != nil {
					return r, err
				}
			}
		}
		hs, bytes, syncSec, asyncSec, err := snapshotTo(b, store, id)
		if err != nil {
			return r, err
		}
		r.bytes = append(r.bytes, bytes)
		r.async = append(r.async, time.Duration(asyncSec*float64(time.Second)))
		r.maxSync = max(r.maxSync, time.Duration(syncSec*float64(time.Second)))
		r.last = hs
	}
	return r, nil
}

// restoreRun restores hs twice: on the directory the run left (local
// recovery), then on a fresh one.
func restoreRun(o pebblestate.Options, storeDir string, hs []checkpoint.Handle) (string, error) {
	store, err := fsstore.Open(storeDir)
	if err != nil {
		return "", err
	}
	var cells []string
	var replayed int64
	for _, fresh := range []bool{false, true} {
		ro := o
		if fresh {
			ro.Dir = o.Dir + "-fresh"
			defer os.RemoveAll(ro.Dir)
		}
		start := time.Now()
		b, err := pebblestate.New(ro).New(ctxBG, subtaskInfo(), hs, downloader{store: store})
		if err != nil {
			return "", err
		}
		took := time.Since(start)
		st, _ := pebblestate.StatsOf(b)
		replayed = st.Replayed
		// The first accesses after the restore must not stall either (a
		// compaction on open, say): the slowest of the first 1000.
		c, err := newCounter(b)
		var first time.Duration
		for k := uint64(0); k < 1000 && err == nil; k++ {
			t := time.Now()
			err = c.add(k * 7919)
			first = max(first, time.Since(t))
		}
		b.Close()
		if err != nil {
			return "", err
		}
		cells = append(cells, fmt.Sprintf("%v (fetch %v, open %v, ingest %v) | %v | %.1f", took.Round(time.Millisecond),
			st.FetchTime.Round(time.Millisecond), st.OpenTime.Round(time.Millisecond), st.IngestTime.Round(time.Millisecond),
			first.Round(10*time.Microsecond), mib(st.Downloaded)))
	}
	return fmt.Sprintf("%s | %s | %.1f |", cells[0], cells[1], mib(replayed)), nil
}

// rates are the shares of keys changed per checkpoint (-restore-only: 1%).
func rates() []float64 {
	if *restoreOnly {
		return []float64{0.01}
	}
	return []float64{0.001, 0.01, 0.1}
}
