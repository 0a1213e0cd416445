package pebblestate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Ingesting every snapshot's segment into Pebble made each one a new L0
// sublevel spanning the whole key range, and every few of them an L0
// compaction rewrote most of the state: with checkpoints every 100 ms that
// was the largest cost of a keyed job (bench/suite). So written segments
// wait, and are ingested together, merged into one table, when enough of
// them accumulated, when a materialization needs Pebble to hold exactly a
// snapshot's state, or when the record path spills.
//
// A waiting segment is read back from its file, which the run keeps open:
// the file may be moved or removed once uploaded, its content stays. Runs
// used to wait in memory, sorted; on a job updating a million keys a
// second they held a few hundred MiB, and fresh memory is costly (page
// faults: about 3 ms per MiB on the machines we measure on).
//
// Until its run is ingested, an epoch's entries stay in the write cache and
// may not be evicted (reads of them never reach Pebble, which lacks them),
// but once its segment is written they may be updated in place: the
// segment holds their values.

// run is a written segment waiting to be ingested.
type run struct {
	f     *os.File
	size  int64
	epoch uint64 // the write cache epoch it holds
}

// These bound what waits for the merged ingest.
const (
	maxPendingRuns     = 16
	maxPendingRunBytes = 64 << 20
)

// addRun queues a written segment for ingestion. Under wmu.
func (b *backend) addRun(r run) {
	b.runs = append(b.runs, r)
	b.runBytes += r.size
}

// runsFull reports whether the queued runs should be ingested now.
func (b *backend) runsFull() bool {
	return len(b.runs) >= maxPendingRuns || b.runBytes >= b.runBudget()
}

// runBudget is the segment bytes that may wait for ingestion: their entries
// cannot be evicted meanwhile.
func (b *backend) runBudget() int64 { return min(maxPendingRunBytes, b.opts.WriteCacheSize/4) }

// ingestRuns merges the queued runs into one table, newest value winning,
// ingests it, and marks their epochs as in Pebble. Under wmu.
func (b *backend) ingestRuns() error {
	if len(b.runs) == 0 {
		return nil
	}
	start := time.Now()
	last := b.runs[len(b.runs)-1].epoch
	path := filepath.Join(b.dir.seg, fmt.Sprintf("merged-%020d.sst", last))
	n, err := b.ingestRunsInto(b.db, b.runs, path)
	if err != nil {
		return fmt.Errorf("merge changelog segments into the database: %w", err)
	}
	b.markApplied(last)
	b.closeRuns()
	b.opts.Logger.Debug("pebblestate: ingested merged runs", "operator", b.info.Operator, "subtask", b.info.Subtask, "entries", n, "took", time.Since(start))
	return nil
}

// closeRuns forgets the queued runs. Under wmu.
func (b *backend) closeRuns() {
	for _, r := range b.runs {
		r.f.Close()
	}
	clear(b.runs)
	b.runs, b.runBytes = b.runs[:0], 0
}

// mergeRuns calls add with every key of the runs in key order, with its
// value in the newest run holding it, and returns how many it added.
func mergeRuns(runs []run, add func(op byte, k, v []byte) error) (int, error) {
	rs := make([]*segmentReader, len(runs))
	live := make([]bool, len(runs))
	advance := func(i int) error {
		if live[i] = rs[i].next(); !live[i] && rs[i].err != nil {
			return fmt.Errorf("%s: %w", runs[i].f.Name(), rs[i].err)
		}
		return nil
	}
	for i, r := range runs {
		sr, err := openSegment(r.f)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", r.f.Name(), err)
		}
		rs[i] = sr
		if err := advance(i); err != nil {
			return 0, err
		}
	}
	n := 0
	for {
		// The smallest key; on ties the newest run (highest index).
		best := -1
		for i, r := range rs {
			if live[i] && (best < 0 || bytes.Compare(r.key, rs[best].key) <= 0) {
				best = i
			}
		}
		if best < 0 {
			return n, nil
		}
		r := rs[best]
		if err := add(r.op, r.key, r.val); err != nil {
			return n, err
		}
		n++
		// Older versions of the key are superseded. The newest run
		// advances last: the others compare with its key.
		for i := range rs {
			if i != best && live[i] && bytes.Equal(rs[i].key, r.key) {
				if err := advance(i); err != nil {
					return n, err
				}
			}
		}
		if err := advance(best); err != nil {
			return n, err
		}
	}
}
