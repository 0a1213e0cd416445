package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/onceflow/onceflow/checkpoint"
)

// batchSize is how many records a producer buffers per consumer before it
// sends them; buffers are also flushed after every input batch, on barriers
// and on watermarks, so latency stays bounded.
const batchSize = 512

// linkCapacity is how many messages a link between two subtasks holds before
// the producer blocks: backpressure.
const linkCapacity = 8

type msgKind uint8

const (
	msgData msgKind = iota
	msgWatermark
	msgBarrier
	// msgEndOfData: the producer will send no more records (but may still
	// forward barriers). Consumers flush end-of-input results.
	msgEndOfData
	// msgEndOfStream: nothing more at all; sent after the final checkpoint.
	msgEndOfStream
)

// message is the one ordered stream between two subtasks.
type message[T any] struct {
	kind      msgKind
	records   []T
	watermark int64
	barrier   checkpoint.Barrier
}

// pipe connects one producer subtask to one consumer subtask: the ordered
// messages, and the way back for emptied batches. A batch of 512 records
// allocated per send was the largest allocation of a keyed job (a Kafka
// message is ~120 bytes), and its garbage a good part of the GC's work;
// consumers hand processed batches back instead (SinkWriter.Write and
// Operator.ProcessBatch must not retain them).
type pipe[T any] struct {
	ch   chan message[T]
	free chan []T
}

func newPipe[T any]() *pipe[T] {
	return &pipe[T]{ch: make(chan message[T], linkCapacity), free: make(chan []T, linkCapacity+2)}
}

// recycle returns a processed batch to its producer, emptied so that it
// keeps no records alive. If the producer has enough, it is dropped.
func (p *pipe[T]) recycle(recs []T) {
	clear(recs)
	select {
	case p.free <- recs[:0]:
	default:
	}
}

// batch returns an empty batch for the producer: a recycled one if any.
func (p *pipe[T]) batch() []T {
	select {
	case b := <-p.free:
		return b
	default:
		return make([]T, 0, batchSize)
	}
}

// link is the producer's end of a pipe. wake is the consumer's shared
// wake-up channel: the consumer polls its (unblocked) inputs and sleeps on
// wake, so it can stop reading a blocked input while still reading the
// others.
type link[T any] struct {
	*pipe[T]
	wake chan struct{}
}

func (l link[T]) send(ctx context.Context, m message[T]) error {
	select {
	case l.ch <- m:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	wakeUp(l.wake)
	return nil
}

// signal wakes a sleeper without ever blocking: wake channels have capacity one.
func wakeUp(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// control is a message from the coordinator to a subtask.
type control struct {
	kind    controlKind
	barrier checkpoint.Barrier // trigger
	id      uint64             // complete, aborted
	final   bool
	err     error // failed
}

type controlKind uint8

const (
	ctlTrigger controlKind = iota
	ctlComplete
	ctlAborted
	// ctlFailed: work the subtask handed to a goroutine of its own (a
	// sink's asynchronous pre-commit) failed; the subtask fails with err.
	ctlFailed
)

// mailbox carries control messages to a subtask. It never blocks the sender,
// so the coordinator is never stalled by a slow subtask.
type mailbox struct {
	mu    sync.Mutex
	items []control
	n     atomic.Int32
	wake  chan struct{}
}

func newMailbox() *mailbox { return &mailbox{wake: make(chan struct{}, 1)} }

func (m *mailbox) push(c control) {
	m.mu.Lock()
	m.items = append(m.items, c)
	m.mu.Unlock()
	m.n.Add(1)
	wakeUp(m.wake)
}

// drain returns the pending control messages, oldest first.
func (m *mailbox) drain() []control {
	if m.n.Load() == 0 {
		return nil
	}
	m.mu.Lock()
	items := m.items
	m.items = nil
	m.n.Store(0)
	m.mu.Unlock()
	return items
}

func (m *mailbox) pending() bool { return m.n.Load() > 0 }
