package engine

import (
	"context"
	"sync/atomic"

	"github.com/onceflow/onceflow/checkpoint"
)

// Output is where an operator emits records. Records are buffered per
// consumer subtask and sent in batches; the runtime flushes after each input
// batch. Emit never fails: if the job is being cancelled the records are
// dropped and the subtask stops after the current batch.
type Output[T any] struct {
	ctx   context.Context
	edges []outEdge[T]
	err   error
	sent  *atomic.Int64 // records sent, for status
}

type outEdge[T any] struct {
	part     partitioning
	links    []link[T] // by consumer subtask; only links[0] for forward
	bufs     [][]T
	keyGroup func(T) int
	owner    []int // key group -> consumer subtask
	rr       int
}

// Emit sends rec downstream.
func (o *Output[T]) Emit(rec T) {
	for i := range o.edges {
		e := &o.edges[i]
		t := 0
		switch e.part {
		case rebalance:
			t = e.rr
			if e.rr++; e.rr == len(e.links) {
				e.rr = 0
			}
		case hashed:
			t = e.owner[e.keyGroup(rec)]
		}
		e.bufs[t] = append(e.bufs[t], rec)
		if len(e.bufs[t]) >= batchSize {
			o.send(e, t)
		}
	}
}

func (o *Output[T]) send(e *outEdge[T], t int) {
	if o.err != nil {
		e.bufs[t] = e.bufs[t][:0]
		return
	}
	recs := e.bufs[t]
	e.bufs[t] = e.links[t].batch()
	o.sent.Add(int64(len(recs)))
	if err := e.links[t].send(o.ctx, message[T]{kind: msgData, records: recs}); err != nil {
		o.err = err
	}
}

// flush sends every buffered record.
func (o *Output[T]) flush() error {
	for i := range o.edges {
		e := &o.edges[i]
		for t := range e.bufs {
			if len(e.bufs[t]) > 0 {
				o.send(e, t)
			}
		}
	}
	return o.err
}

// broadcast flushes and then sends a control message to every consumer
// subtask, keeping it ordered behind the records.
func (o *Output[T]) broadcast(m message[T]) error {
	if err := o.flush(); err != nil {
		return err
	}
	for i := range o.edges {
		for _, l := range o.edges[i].links {
			if err := l.send(o.ctx, m); err != nil {
				o.err = err
				return err
			}
		}
	}
	return nil
}

func (o *Output[T]) barrier(b checkpoint.Barrier) error {
	return o.broadcast(message[T]{kind: msgBarrier, barrier: b})
}

func (o *Output[T]) watermark(wm int64) error {
	return o.broadcast(message[T]{kind: msgWatermark, watermark: wm})
}
