package kafka

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordBuilder turns user records into client records, a batch at a time,
// into a slab: one allocation for the batch's client records and one for
// the keys and values of serializers that can append. The client keeps each
// record until its promise runs; once every promise of a slab has run, the
// slab goes back to the builder for a later batch. Allocating them afresh
// was a fifth of a keyed job's allocations, and the garbage collector's
// work grows with them (bench/suite).
type recordBuilder[T any] struct {
	cfg *SinkConfig[T]
	// bufSize is the encoded size of the last batch: the next one's
	// buffer starts there.
	bufSize int

	mu   sync.Mutex
	free []*slab // slabs whose records are all acknowledged
}

// maxFreeSlabs bounds the slabs a builder keeps: enough for the batches in
// flight between two flushes at the engine's batch size, few enough that an
// idle sink holds little.
const maxFreeSlabs = 64

// slab holds the client records of one batch and their encoded bytes.
type slab struct {
	recs    []kgo.Record
	buf     []byte
	left    atomic.Int64 // promises still to run
	res     *results
	promise func(*kgo.Record, error) // s.done, allocated once per slab
	back    func(*slab)
}

func (s *slab) done(r *kgo.Record, err error) {
	s.res.done(r, err)
	if s.left.Add(-1) == 0 {
		s.back(s)
	}
}

// buildAll builds the client records of a batch, whose results go to res.
// The caller must produce every record of the slab with its promise (a
// record produced with another promise would keep the slab from coming
// back, which costs an allocation, nothing else).
func (b *recordBuilder[T]) buildAll(vs []T, res *results) (*slab, error) {
	s := b.take()
	if cap(s.recs) < len(vs) {
		s.recs = make([]kgo.Record, len(vs))
	}
	s.recs = s.recs[:len(vs)]
	if cap(s.buf) < b.bufSize {
		s.buf = make([]byte, 0, b.bufSize)
	}
	buf := s.buf[:0]
	// One clock read per batch, not per record as the client would (the
	// clock costs ~50 ns on the virtual machines we measure on: 5% of a
	// pass-through job's CPU). The client truncates to milliseconds too.
	now := time.Now().Truncate(time.Millisecond)
	var err error
	for i := range vs {
		if buf, err = b.build(vs[i], &s.recs[i], buf, now); err != nil {
			return nil, err
		}
	}
	b.bufSize = max(b.bufSize, cap(buf))
	s.buf, s.res = buf, res
	s.left.Store(int64(len(vs)))
	return s, nil
}

// take returns a free slab, emptied, or a new one.
func (b *recordBuilder[T]) take() *slab {
	b.mu.Lock()
	var s *slab
	if n := len(b.free); n > 0 {
		s = b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
	}
	b.mu.Unlock()
	if s == nil {
		s = &slab{back: b.giveBack}
		s.promise = s.done
		return s
	}
	clear(s.recs) // no record may keep a header, a topic or a key of its last batch
	return s
}

// giveBack keeps s for a later batch. It runs on the client's goroutines.
func (b *recordBuilder[T]) giveBack(s *slab) {
	s.res = nil
	b.mu.Lock()
	if len(b.free) < maxFreeSlabs {
		b.free = append(b.free, s)
	}
	b.mu.Unlock()
}
