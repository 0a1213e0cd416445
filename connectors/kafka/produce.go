package kafka

import (
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// results collects the outcome of asynchronous produces: the first error,
// and, for a transaction, the producer id and epoch its records were
// written with and the position of its first acknowledged record. The
// client calls promises from its own goroutines.
type results struct {
	mu      sync.Mutex
	err     error
	acked   int64
	set     bool
	pid     int64
	epoch   int16
	first   recordPos
	promise func(*kgo.Record, error) // r.done, allocated once
}

func newResults() *results {
	r := &results{}
	r.promise = r.done
	return r
}

func (r *results) done(rec *kgo.Record, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		if r.err == nil {
			r.err = fmt.Errorf("produce to topic %s partition %d: %w", rec.Topic, rec.Partition, err)
		}
		return
	}
	r.acked++
	switch {
	case !r.set:
		// Promises of one partition run in offset order, so the first
		// acknowledged record is the first its partition got from this
		// transaction: the offset the leader reports as the transaction's
		// start on that partition while it is open.
		r.pid, r.epoch, r.set = rec.ProducerID, rec.ProducerEpoch, true
		r.first = recordPos{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
	case (rec.ProducerID != r.pid || rec.ProducerEpoch != r.epoch) && r.err == nil:
		// One transaction must be written by one producer id and epoch:
		// a change means the client re-initialized mid-transaction, which
		// aborted the records written before.
		r.err = fmt.Errorf("producer id/epoch changed within one transaction, from %d/%d to %d/%d (topic %s partition %d)",
			r.pid, r.epoch, rec.ProducerID, rec.ProducerEpoch, rec.Topic, rec.Partition)
	}
}

// failed returns the first produce error so far.
func (r *results) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// outcome is what a transaction's produces came to.
type outcome struct {
	acked int64
	pid   int64
	epoch int16
	first recordPos
	ok    bool // at least one record was acknowledged
}

// snapshot returns the outcome once every produce finished (after Flush).
func (r *results) snapshot() (outcome, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return outcome{acked: r.acked, pid: r.pid, epoch: r.epoch, first: r.first, ok: r.set}, r.err
}

func (r *results) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err, r.acked, r.set, r.pid, r.epoch, r.first = nil, 0, false, 0, 0, recordPos{}
}
