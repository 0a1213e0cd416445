package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

type slotState int

const (
	slotFree      slotState = iota
	slotOpen                // records are being written into its transaction
	slotPrepared            // flushed at a barrier, waiting for its checkpoint
	slotCommitted           // committed; reusable after a later checkpoint completes
	slotBroken              // a commit failed with an unknown outcome: never reuse
	slotWarming             // free, its producer id loading off the record path (warm)
)

// slot is one transactional id of the pool with its producer client.
type slot struct {
	index     int
	id        string
	cl        *kgo.Client // created on first use, kept for reuse
	state     slotState
	prepared  committable
	freeAfter uint64 // slotCommitted: reusable once a checkpoint > freeAfter completes
	res       *results
}

// txnWriter is the exactly-once writer of one sink subtask (see the package
// documentation for the protocol).
type txnWriter[T any] struct {
	cfg         *SinkConfig[T]
	name        string
	ids         txnIDs
	subtask     int
	parallelism int
	b           recordBuilder[T]
	adm         *kgo.Client // raw EndTxn, InitProducerID, ListTransactions
	slots       []*slot
	cur         *slot
	curSince    time.Time // when cur's transaction got its first record
	lastBarrier uint64    // id of the latest PreCommit
	log         *slog.Logger
	// endClient ends the client's transaction after the sink committed it
	// (see settle); tests replace it to act like the faulty client.
	endClient func(context.Context, *kgo.Client) error
	kip890    bool       // the cluster runs KIP-890 transactions (set by Recover)
	mu        sync.Mutex // guards slot.prepared: StartPreCommit's finish sets it
	next      *warming   // the slot the next transaction will use, warming up
}

func newTxnWriter[T any](ctx *engine.Context, cfg *SinkConfig[T]) (*txnWriter[T], error) {
	return makeTxnWriter(cfg, ctx.Job(), ctx.Operator(), ctx.Subtask(), ctx.Parallelism())
}

func makeTxnWriter[T any](cfg *SinkConfig[T], job, operator string, subtask, parallelism int) (*txnWriter[T], error) {
	adm, err := newClient(cfg.Brokers, cfg.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("kafka sink %q: %w", operator, err)
	}
	w := &txnWriter[T]{
		cfg: cfg, name: operator, ids: newTxnIDs(cfg.TransactionalIDPrefix, operator),
		subtask: subtask, parallelism: parallelism, b: recordBuilder[T]{cfg: cfg}, adm: adm,
		log:       slog.Default().With("job", job, "sink", operator, "subtask", subtask),
		endClient: func(ctx context.Context, cl *kgo.Client) error { return cl.EndTransaction(ctx, kgo.TryCommit) },
	}
	for i := 0; i < cfg.PoolSize; i++ {
		w.slots = append(w.slots, &slot{index: i, id: w.ids.id(subtask, i), res: newResults()})
	}
	return w, nil
}

func (w *txnWriter[T]) Write(ctx context.Context, records []T) error {
	if len(records) == 0 {
		return nil
	}
	if w.cur == nil {
		if err := w.open(); err != nil {
			return err
		}
	}
	s := w.cur
	if err := s.res.failed(); err != nil {
		return fmt.Errorf("transaction %q: %w", s.id, explain(err))
	}
	sl, err := w.b.buildAll(records, s.res)
	if err != nil {
		return err
	}
	for i := range sl.recs {
		s.cl.Produce(ctx, &sl.recs[i], sl.promise)
	}
	if c := w.cfg.Counters; c != nil {
		c.Records.Add(int64(len(records)))
	}
	return nil
}

// open starts a transaction: on the slot warmed for it, or on the first
// free id of the pool.
func (w *txnWriter[T]) open() error {
	s := w.takeWarm()
	prepared, committed := 0, 0
	for _, c := range w.slots {
		switch c.state {
		case slotFree:
			if s == nil {
				s = c
			}
		case slotPrepared:
			prepared++
		case slotCommitted:
			committed++
		}
	}
	if s == nil {
		return fmt.Errorf("kafka sink %q subtask %d: all %d transactional ids are in use (%d prepared, %d committed and waiting for a later checkpoint before reuse): checkpoints are not completing; fix them or raise PoolSize",
			w.name, w.subtask, len(w.slots), prepared, committed)
	}
	if err := w.ensureClient(s); err != nil {
		return err
	}
	if err := s.cl.BeginTransaction(); err != nil {
		return fmt.Errorf("kafka sink %q: begin transaction on %q: %w", w.name, s.id, err)
	}
	s.res.reset()
	s.state = slotOpen
	w.cur, w.curSince = s, time.Now()
	w.warm()
	return nil
}

func (w *txnWriter[T]) ensureClient(s *slot) error {
	if s.cl != nil {
		return nil
	}
	opts := append([]kgo.Opt{kgo.TransactionalID(s.id), kgo.TransactionTimeout(w.cfg.TransactionTimeout)}, w.cfg.ClientOptions...)
	cl, err := newClient(w.cfg.Brokers, opts)
	if err != nil {
		return fmt.Errorf("kafka sink %q: producer for %q: %w", w.name, s.id, err)
	}
	s.cl = cl
	return nil
}

// warming is a free slot whose client loads its producer id.
type warming struct {
	s      *slot
	done   chan error
	cancel context.CancelFunc
}

// warm gets a free slot ready for the next transaction, off the record
// path: a new client's first transaction waits for InitProducerID, and the
// record path waited with it (measured at the first checkpoints of the
// keyed benchmark: up to 100 ms, the embedded broker answering between
// produce requests). Without KIP-890 every transaction has a new client
// (settle), so every one of them would wait.
func (w *txnWriter[T]) warm() {
	if w.next != nil {
		return
	}
	for _, s := range w.slots {
		if s.state != slotFree {
			continue
		}
		if err := w.ensureClient(s); err != nil {
			return // open reports it
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := &warming{s: s, done: make(chan error, 1), cancel: cancel}
		s.state, w.next = slotWarming, n
		cl := s.cl
		go func() {
			_, _, err := cl.ProducerID(ctx)
			n.done <- err
		}()
		return
	}
}

// takeWarm returns the warmed slot, free, once its warm-up ended; nil if
// none. A failed warm-up is left for BeginTransaction to report or recover
// from.
func (w *txnWriter[T]) takeWarm() *slot {
	n := w.next
	if n == nil {
		return nil
	}
	w.next = nil
	if err := <-n.done; err != nil {
		w.log.Debug("warming up a producer failed", "transaction", n.s.id, "err", err)
	}
	n.cancel()
	n.s.state = slotFree
	return n.s
}

// ConnectorMetrics reports since when the open transaction has been open
// (engine.MetricsReporter): an age approaching TransactionTimeout means
// the broker is about to abort it.
func (w *txnWriter[T]) ConnectorMetrics() engine.ConnectorMetrics {
	m := engine.ConnectorMetrics{Transactional: true}
	if w.cur != nil {
		m.OpenTransactionSince = w.curSince
	}
	return m
}

// PreCommit flushes the open transaction and waits for every produce
// result: one failed record fails the checkpoint. The committable carries
// the producer id and epoch the records were written with, and where its
// first record went (see committable.First).
func (w *txnWriter[T]) PreCommit(ctx context.Context, id uint64) ([]byte, error) {
	return engine.PreCommitNow(ctx, w, id)
}

// StartPreCommit is PreCommit in two parts (engine.AsyncPreCommitter): on
// the barrier the open transaction's slot stops taking records, and the
// next Write opens another slot's transaction, on its own client; finish
// flushes the closed one meanwhile. Its client is then used by finish
// alone until it returns, and its prepared committable is guarded by mu
// (Commit reads every slot's).
func (w *txnWriter[T]) StartPreCommit(_ context.Context, id uint64) (func(context.Context) ([]byte, error), error) {
	w.lastBarrier = id
	s := w.cur
	if s == nil {
		return nil, nil // nothing written since the last barrier
	}
	s.state = slotPrepared
	w.cur = nil
	return func(ctx context.Context) ([]byte, error) {
		if err := s.cl.Flush(ctx); err != nil {
			return nil, fmt.Errorf("checkpoint %d: flush transaction %q: %w", id, s.id, err)
		}
		o, err := s.res.snapshot()
		if err != nil || !o.ok {
			if err == nil {
				err = errors.New("no record was acknowledged")
			}
			return nil, fmt.Errorf("checkpoint %d: transaction %q: %w", id, s.id, explain(err))
		}
		c := committable{TxnID: s.id, ProducerID: o.pid, Epoch: o.epoch, First: o.first}
		w.mu.Lock()
		s.prepared = c
		w.mu.Unlock()
		w.log.Debug("pre-committed", "checkpoint", id, "transaction", c.String(), "records", o.acked)
		return c.encode(), nil
	}, nil
}

// Commit commits the transactions of completed checkpoints with the sink's
// own EndTxn (commitRaw), not with the client's EndTransaction: franz-go
// v1.22.2 decides what EndTransaction does from its own record of the
// partitions a transaction added, and under load it sometimes loses that
// record although the produces succeeded. It then returns nil having ended
// nothing (brokers without KIP-890: the transaction stays open until the
// broker aborts it at its timeout), or having ABORTED the transaction
// (KIP-890 brokers: "no produce succeeded in this transaction but produces
// were attempted"). Either way a completed checkpoint's output was
// silently lost: TestStaleCommittable saw it a few times in a thousand runs with
// the CPU saturated, on both kinds of broker. Our EndTxn names the producer
// id and epoch the produces were acknowledged with, so it commits exactly
// the prepared transaction, whatever the client believes.
func (w *txnWriter[T]) Commit(ctx context.Context, cs []checkpoint.Committable) error {
	for _, cm := range cs {
		c, err := decodeCommittable(cm.Data)
		if err != nil {
			return engine.Permanent(fmt.Errorf("checkpoint %d: %w", cm.CheckpointID, err))
		}
		s := w.preparedSlot(c)
		if s == nil {
			// Not prepared by this attempt's clients: commit it the way
			// recovery does.
			if err := w.commitRecovered(ctx, cm.CheckpointID, c); err != nil {
				return err
			}
			continue
		}
		if err := commitRaw(ctx, w.adm, c, w.cfg.CommitTimeout); err != nil {
			// The outcome may be unknown: never touch the id again. The
			// restart recovers the transaction from the checkpoint by
			// producer id and epoch.
			s.state = slotBroken
			return fmt.Errorf("checkpoint %d: commit %s: %w", cm.CheckpointID, c, err)
		}
		w.settle(ctx, s, c)
		s.state, s.freeAfter = slotCommitted, w.lastBarrier
		if c := w.cfg.Counters; c != nil {
			c.Committed.Add(1)
		}
	}
	return nil
}

// settle brings the client of s, whose transaction the sink just committed
// with its own EndTxn, out of it.
//
// With KIP-890 its EndTransaction repeats the commit, which the broker
// answers as a retry of a completed commit with the bumped epoch, which
// the client adopts. If the client instead does something else (the abort
// above), the broker refuses it and the client is replaced.
//
// Without KIP-890 the client is always replaced, and the id's next
// transaction initializes a new producer (as Flink's KafkaSink does for
// every checkpoint): there the client adds each partition to a transaction
// with AddPartitionsToTxn once its own record says it has not, and the
// record that went astray in the last transaction (Commit) can say it has,
// so that the next transaction's produce is refused (INVALID_TXN_STATE:
// TestCommitNotLeftToClient saw it twice in about 200 loaded runs).
func (w *txnWriter[T]) settle(ctx context.Context, s *slot, c committable) {
	if w.kip890 {
		err := w.endClient(ctx, s.cl)
		if err == nil {
			return
		}
		w.log.Warn("the producer client disagreed with the commit the sink made; replacing the client", "transaction", c.String(), "err", err)
	}
	s.cl.Close()
	s.cl = nil
}

func (w *txnWriter[T]) preparedSlot(c committable) *slot {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.slots {
		if s.state == slotPrepared && s.prepared == c {
			return s
		}
	}
	return nil
}

// CheckpointComplete frees the ids committed before the snapshot of a
// checkpoint that is now complete: no restore point names their old
// transaction any more.
func (w *txnWriter[T]) CheckpointComplete(id uint64) error {
	for _, s := range w.slots {
		if s.state == slotCommitted && id > s.freeAfter {
			s.state = slotFree
		}
	}
	w.warm()
	return nil
}

// CheckpointAborted needs nothing: the aborted checkpoint's transaction
// stays prepared and the next completed checkpoint commits it.
func (w *txnWriter[T]) CheckpointAborted(uint64) {}

// Close aborts the open transaction (best effort, bounded: recovery aborts it
// anyway) and releases the clients. Prepared transactions are left alone:
// they belong to checkpoints that may complete, and recovery commits them.
func (w *txnWriter[T]) Close() error {
	if n := w.next; n != nil {
		n.cancel()
		w.takeWarm()
	}
	if s := w.cur; s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := s.cl.AbortBufferedRecords(ctx); err == nil {
			if err := s.cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
				w.log.Debug("abort open transaction at close", "transaction", s.id, "err", err)
			}
		}
		cancel()
		w.cur = nil
	}
	for _, s := range w.slots {
		if s.cl != nil {
			s.cl.Close()
		}
	}
	w.adm.Close()
	return nil
}

// explain adds what to do about errors whose cause is configuration.
func explain(err error) error {
	switch {
	case errors.Is(err, kerr.InvalidTransactionTimeout):
		return fmt.Errorf("%w (the sink's TransactionTimeout exceeds the broker's transaction.max.timeout.ms)", err)
	case errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return fmt.Errorf("%w (recovery checks which transaction is open before committing a restored one: the sink's principal needs Read on its output topics for DescribeProducers and Describe on its transactional ids)", err)
	case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return fmt.Errorf("%w (another producer took over the transactional id: is a second job using the same TransactionalIDPrefix?)", err)
	}
	return err
}
