package pebblestate

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Ingesting every snapshot's segment into Pebble made each one a new L0
// sublevel spanning the whole key range, and every few of them an L0
// compaction rewrote most of the state: with checkpoints every 100 ms that
// was the largest cost of a keyed job (bench/suite). So a written segment's
// sorted run stays in memory, and runs are ingested together, merged into
// one table, when enough of them accumulated, when a materialization needs
// Pebble to hold exactly a snapshot's state, or when the record path spills.
//
// Until its run is ingested, an epoch's entries stay in the write cache and
// may not be evicted (reads of them never reach Pebble, which lacks them),
// but once its segment is written they may be updated in place: the run
// holds copies of their values.

// These bound what waits in memory for the merged ingest.
const (
	maxPendingRuns     = 16
	maxPendingRunBytes = 64 << 20
)

// addRun queues a written generation's run for ingestion. Under wmu.
func (b *backend) addRun(r run) {
	b.runs = append(b.runs, r)
	b.runBytes += r.bytes()
}

// runsFull reports whether the queued runs should be ingested now.
func (b *backend) runsFull() bool {
	return len(b.runs) >= maxPendingRuns || b.runBytes >= b.runBudget()
}

// ingestRuns merges the queued runs into one table, newest value winning,
// ingests it, and marks their epochs as in Pebble. Under wmu.
func (b *backend) ingestRuns() error {
	if len(b.runs) == 0 {
		return nil
	}
	start := time.Now()
	path := filepath.Join(b.dir.seg, fmt.Sprintf("merged-%020d.sst", b.runs[len(b.runs)-1].epoch))
	w, err := b.createTable(path)
	if err != nil {
		return err
	}
	n, err := mergeRuns(b.runs, w.add)
	if err != nil {
		w.abandon()
		return err
	}
	if n == 0 {
		w.abandon()
	} else {
		if err := w.close(); err != nil {
			return err
		}
		// Pebble moves the file in: nothing else uses it.
		if err := b.db.Ingest(context.Background(), []string{path}); err != nil {
			os.Remove(path)
			return fmt.Errorf("ingest merged changes: %w", err)
		}
	}
	b.markApplied(b.runs[len(b.runs)-1].epoch)
	// Keep the runs' buffers for the next generations, up to what the
	// queue may hold: fresh memory is costly (page faults; see grow).
	for i := range b.runs {
		b.freeRuns = append(b.freeRuns, run{entries: b.runs[i].entries[:0], data: b.runs[i].data[:0]})
	}
	clear(b.runs)
	b.runs, b.runBytes = b.runs[:0], 0
	slices.SortFunc(b.freeRuns, func(x, y run) int { return cmp.Compare(y.bytes(), x.bytes()) })
	var kept int64
	for i := range b.freeRuns {
		if kept += b.freeRuns[i].bytes(); kept > 2*b.runBudget() || i >= maxPendingRuns {
			clear(b.freeRuns[i:])
			b.freeRuns = b.freeRuns[:i]
			break
		}
	}
	b.opts.Logger.Debug("pebblestate: ingested merged runs", "operator", b.info.Operator, "subtask", b.info.Subtask, "entries", n, "took", time.Since(start))
	return nil
}

// freeRun returns recycled buffers for the next run, the largest. Under wmu.
func (b *backend) freeRun() run {
	if len(b.freeRuns) == 0 {
		return run{}
	}
	r := b.freeRuns[0]
	b.freeRuns = slices.Delete(b.freeRuns, 0, 1)
	return r
}

// runBudget is the memory queued runs may hold before they are ingested.
func (b *backend) runBudget() int64 { return min(maxPendingRunBytes, b.opts.WriteCacheSize/4) }

// mergeRuns calls add with every key of the runs in key order, with its
// value in the newest run holding it, and returns how many it added.
func mergeRuns(runs []run, add func(op byte, k, v []byte) error) (int, error) {
	pos := make([]int, len(runs))
	n := 0
	var kbuf [16]byte
	var vbuf [8]byte
	for {
		// The smallest head; on ties the newest run (highest index).
		best := -1
		for i := range runs {
			if pos[i] == len(runs[i].entries) {
				continue
			}
			if best < 0 || compareEntries(&runs[i], runs[i].entries[pos[i]], &runs[best], runs[best].entries[pos[best]]) <= 0 {
				best = i
			}
		}
		if best < 0 {
			return n, nil
		}
		r := &runs[best]
		x := r.entries[pos[best]]
		op := opPut
		if x.vlen < 0 {
			op = opDelete
		}
		if err := add(op, r.key(&x, &kbuf), r.value(&x, &vbuf)); err != nil {
			return n, err
		}
		n++
		// Older versions of the key are superseded.
		for i := range runs {
			if pos[i] < len(runs[i].entries) && compareEntries(&runs[i], runs[i].entries[pos[i]], r, x) == 0 {
				pos[i]++
			}
		}
	}
}

func compareEntries(ra *run, a sortedEntry, rb *run, b sortedEntry) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	if c := cmp.Compare(a.lo, b.lo); c != 0 {
		return c
	}
	var ka, kb [16]byte
	return bytes.Compare(ra.key(&a, &ka), rb.key(&b, &kb))
}
