package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// pollWait bounds a read when nothing is buffered, so that barriers are
// injected on time (engine.SourceReader).
const pollWait = 10 * time.Millisecond

// partState is one partition a reader owns.
type partState struct {
	tp
	pos  position
	done bool // bounded: reached its stop offset
	wm   partWatermark
	end  int64 // end of the readable log at the latest fetch (see noteEnd)
}

// reader reads the partitions of one source subtask.
type reader[K, V any] struct {
	name        string
	cfg         *SourceConfig[K, V]
	subtask     int
	parallelism int
	ctx         context.Context // the subtask's
	cl          *kgo.Client
	parts       map[tp]*partState
	order       []*partState // fixed order for positions and watermarks
	active      int          // partitions not done
	discovered  chan []tp
	dlq         *deadLetters
	started     time.Time
	bucket      tokenBucket // RatePerSecond
	log         *slog.Logger

	// Positions of the latest snapshot, committed to the group when the
	// checkpoint completes (at most one checkpoint is pending at a time,
	// so the latest snapshot is the completing checkpoint's).
	topicIDs    map[string][16]byte // for group commits (OffsetCommit v10+ names topics by id)
	snapshot    map[tp]int64
	commits     chan map[tp]int64
	stopCommits chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newReader[K, V any](sctx *engine.SourceContext, name string, cfg *SourceConfig[K, V]) (_ *reader[K, V], err error) {
	ctx := sctx.Context.Context()
	opts := []kgo.Opt{
		kgo.KeepControlRecords(), // their offsets move positions past commit markers
		// An offset out of range means records we were to read are gone:
		// fail loudly instead of silently resetting.
		kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.WithPools(&recordPool{}),
	}
	if !cfg.ReadUncommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := newClient(cfg.Brokers, cfg.ClientOptions, opts...)
	if err != nil {
		return nil, err
	}
	r := &reader[K, V]{
		name: name, cfg: cfg, subtask: sctx.Subtask(), parallelism: sctx.Parallelism(), ctx: ctx, cl: cl,
		parts: map[tp]*partState{}, discovered: make(chan []tp), started: time.Now(),
		log: slog.Default().With("job", sctx.Job(), "source", name, "subtask", sctx.Subtask()),
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	if cfg.OnBadRecord == DeadLetterBadRecord {
		if r.dlq, err = newDeadLetters(cfg); err != nil {
			return nil, err
		}
	}
	counts, ids, err := topicMetadata(ctx, cl, cfg.Topics, true)
	if err != nil {
		return nil, err
	}
	r.topicIDs = ids
	owned := ownedPartitions(cfg.Topics, counts, r.subtask, r.parallelism)
	if err := r.place(ctx, owned, sctx.RestoredPositions()); err != nil {
		return nil, err
	}
	gctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	if cfg.DiscoveryInterval > 0 {
		r.wg.Add(1)
		go r.discover(gctx, owned, cfg.DiscoveryInterval)
	}
	if cfg.CommitOffsets {
		r.commits = make(chan map[tp]int64, 1)
		r.stopCommits = make(chan struct{})
		r.wg.Add(1)
		go r.commitLoop(r.stopCommits)
	}
	return r, nil
}

func (r *reader[K, V]) add(st *partState) {
	st.wm.lastActive = time.Now()
	r.parts[st.tp] = st
	r.order = append(r.order, st)
	r.active++
}

func (r *reader[K, V]) finish(st *partState) {
	if !st.done {
		st.done = true
		r.active--
	}
}

// ReadBatch returns the records buffered by the client, waiting at most
// pollWait when there are none.
func (r *reader[K, V]) ReadBatch(ctx context.Context, dst []Message[K, V]) ([]Message[K, V], error) {
	select {
	case found := <-r.discovered:
		r.addDiscovered(found)
	default:
	}
	if r.cfg.Bounded && r.active == 0 {
		return dst, io.EOF
	}
	if r.active == 0 {
		return dst, sleep(ctx, pollWait)
	}
	limit := r.cfg.BatchSize
	if rate := r.cfg.RatePerSecond; rate > 0 {
		allowed := r.bucket.take(rate, time.Now())
		if allowed < 1 {
			return dst, sleep(ctx, min(time.Duration(float64(time.Second)/rate), pollWait))
		}
		limit = min(limit, allowed)
	}
	pctx, cancel := context.WithTimeout(ctx, pollWait)
	fetches := r.cl.PollRecords(pctx, limit)
	cancel()
	if err := ctx.Err(); err != nil {
		return dst, err
	}
	var ferr error
	fetches.EachError(func(topic string, partition int32, err error) {
		if ferr != nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		at := int64(-1)
		if st := r.parts[tp{topic, partition}]; st != nil {
			at = st.pos.next
		}
		ferr = fmt.Errorf("fetch %s/%d at offset %d: %w", topic, partition, at, err)
	})
	if ferr != nil {
		return dst, ferr
	}
	n0 := len(dst)
	var derr error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if derr != nil {
			return
		}
		st := r.parts[tp{fp.Topic, fp.Partition}]
		if st == nil || st.done {
			return
		}
		st.noteEnd(&fp.FetchPartition, !r.cfg.ReadUncommitted)
		if len(fp.Records) == 0 {
			return
		}
		dst, derr = r.take(st, fp.Records, dst)
	})
	r.bucket.spend(len(dst) - n0)
	if r.cfg.Counters != nil {
		r.cfg.Counters.Records.Add(int64(len(dst) - n0))
	}
	return dst, derr
}

// take emits the records of one partition batch and moves its position past
// each record, control and bad records included.
func (r *reader[K, V]) take(st *partState, recs []*kgo.Record, dst []Message[K, V]) ([]Message[K, V], error) {
	st.wm.lastActive = time.Now() // once per batch: the clock is not free
	for _, rec := range recs {
		if rec.Offset < st.pos.next {
			rec.Recycle()
			continue // already emitted (the client never rewinds, but a position is a promise)
		}
		if st.pos.stop != noStop && rec.Offset >= st.pos.stop {
			r.finish(st)
			r.cl.RemoveConsumePartitions(map[string][]int32{st.topic: {st.partition}})
			return dst, nil
		}
		st.pos.next = rec.Offset + 1
		if rec.Attrs.IsControl() {
			rec.Recycle()
			continue
		}
		m, err := r.decode(rec)
		if err != nil {
			if r.dlq == nil {
				return dst, err // the error holds rec: not recycled
			}
			r.dlq.send(rec, err)
		} else {
			st.wm.observe(rec.Timestamp.UnixMilli())
			dst = append(dst, m)
		}
		// A message holds the record's key, value and header bytes, never
		// the record: the client may reuse it.
		rec.Recycle()
	}
	if st.pos.stop != noStop && st.pos.next >= st.pos.stop {
		r.finish(st)
		r.cl.RemoveConsumePartitions(map[string][]int32{st.topic: {st.partition}})
	}
	return dst, nil
}

func (r *reader[K, V]) decode(rec *kgo.Record) (Message[K, V], error) {
	m := Message[K, V]{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Timestamp: rec.Timestamp}
	var err error
	if r.cfg.Key != nil {
		if m.Key, err = r.cfg.Key.Deserialize(rec.Topic, rec.Key); err != nil {
			return m, &badRecordError{rec: rec, what: "key", err: err}
		}
	}
	if m.Value, err = r.cfg.Value.Deserialize(rec.Topic, rec.Value); err != nil {
		return m, &badRecordError{rec: rec, what: "value", err: err}
	}
	if len(rec.Headers) > 0 {
		m.Headers = make([]Header, len(rec.Headers))
		for i, h := range rec.Headers {
			m.Headers[i] = Header{Key: h.Key, Value: h.Value}
		}
	}
	return m, nil
}

// addDiscovered starts reading partitions created while running, from their
// earliest record: every record of a new partition is new.
func (r *reader[K, V]) addDiscovered(found []tp) {
	offsets := map[string]map[int32]kgo.Offset{}
	for _, p := range found {
		if r.parts[p] != nil {
			continue
		}
		r.add(&partState{tp: p, pos: position{next: offsetEarliest, stop: noStop}})
		if offsets[p.topic] == nil {
			offsets[p.topic] = map[int32]kgo.Offset{}
		}
		offsets[p.topic][p.partition] = kgo.NewOffset().AtStart()
		r.log.Info("kafka source: reading a new partition", "partition", p.String())
	}
	r.cl.AddConsumePartitions(offsets)
}

// Positions returns every owned partition's next offset. Dead letters are
// flushed first: a checkpoint covers a bad record only once its dead letter
// is durable.
func (r *reader[K, V]) Positions() ([]checkpoint.SourcePosition, error) {
	if r.dlq != nil {
		if err := r.dlq.flush(r.ctx); err != nil {
			return nil, err
		}
	}
	out := make([]checkpoint.SourcePosition, len(r.order))
	for i, st := range r.order {
		out[i] = checkpoint.SourcePosition{Split: st.tp.String(), Position: st.pos.encode()}
	}
	if r.commits != nil {
		r.snapshot = make(map[tp]int64, len(r.order))
		for _, st := range r.order {
			if st.pos.next >= 0 {
				r.snapshot[st.tp] = st.pos.next
			}
		}
	}
	return out, nil
}

// Close stops the reader's goroutines and clients.
func (r *reader[K, V]) Close() error {
	if r.cancel != nil {
		r.cancel()
	}
	if r.stopCommits != nil {
		close(r.stopCommits)
	}
	r.wg.Wait()
	if r.dlq != nil {
		r.dlq.close()
	}
	r.cl.Close()
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tokenBucket paces a reader at a rate with bursts of at most a tenth of a
// second, so that a slow start is not caught up in one burst.
type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take refills the bucket and returns how many records may be read now.
func (b *tokenBucket) take(rate float64, now time.Time) int {
	if !b.last.IsZero() {
		b.tokens = min(b.tokens+rate*now.Sub(b.last).Seconds(), max(1, rate/10))
	}
	b.last = now
	return int(b.tokens)
}

func (b *tokenBucket) spend(n int) { b.tokens -= float64(n) }

// recordPool recycles the slices the client decodes fetched batches into
// (kgo.WithPools): a slice returns once every record of its batch was
// recycled. Allocating them afresh was a sixth of a keyed job's allocations
// (bench/suite). The bytes the records point to are not pooled: messages
// keep them.
type recordPool struct {
	mu   sync.Mutex
	free [][]kgo.Record
}

// maxPooledSlices bounds the pool: about what the client's buffered fetches
// hold at once.
const maxPooledSlices = 64

func (p *recordPool) GetRecords(n int) []kgo.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.free) - 1; i >= 0; i-- {
		if s := p.free[i]; cap(s) >= n {
			p.free = slices.Delete(p.free, i, i+1)
			return s[:0]
		}
	}
	return nil // the client allocates
}

func (p *recordPool) PutRecords(s []kgo.Record) {
	p.mu.Lock()
	if len(p.free) < maxPooledSlices {
		p.free = append(p.free, s)
	}
	p.mu.Unlock()
}
