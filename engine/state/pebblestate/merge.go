package pebblestate

import (
	"bytes"
	"fmt"
	"os"
)

// mergeRuns calls add with every key of the runs, sorted changelog
// segments (oldest first), in key order, with its value in the newest run
// holding it, and returns how many it added. Restore merges the segments
// after a base with it.
func mergeRuns(runs []*os.File, add func(op byte, k, v []byte) error) (int, error) {
	rs := make([]*segmentReader, len(runs))
	live := make([]bool, len(runs))
	advance := func(i int) error {
		if live[i] = rs[i].next(); !live[i] && rs[i].err != nil {
			return fmt.Errorf("%s: %w", runs[i].Name(), rs[i].err)
		}
		return nil
	}
	for i, r := range runs {
		sr, err := openSegment(r)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", r.Name(), err)
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
