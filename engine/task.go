package engine

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// taskRunner is one subtask of one attempt, run on its own goroutine.
type taskRunner interface {
	run(ctx context.Context) error
}

// processor is what differs between plain operators, keyed operators and
// sinks; oneInputTask does everything else (alignment, watermarks, snapshots,
// end of input).
type processor[IN, OUT any] interface {
	open(c *Context) error
	process(records []IN, out *Output[OUT]) error
	// user returns the user's operator or writer, to detect capabilities.
	user() any
}

// oneInputTask runs a subtask that reads one input stream (from any number of
// upstream subtasks).
type oneInputTask[IN, OUT any] struct {
	env     *taskEnv
	p       processor[IN, OUT]
	sink    *sinkSide // nil unless the task is a sink
	gate    *inputGate[IN]
	out     *Output[OUT]
	aligner *checkpoint.Aligner
	aligned time.Time // when the current alignment started
	cctx    *Context
	backend state.Backend
}

func newOneInputTask[IN, OUT any](env *taskEnv, p processor[IN, OUT]) *oneInputTask[IN, OUT] {
	t := &oneInputTask[IN, OUT]{env: env, p: p}
	if s, ok := any(p).(interface{ side() *sinkSide }); ok {
		t.sink = s.side()
	}
	return t
}

func (t *oneInputTask[IN, OUT]) run(ctx context.Context) (err error) {
	env := t.env
	t.gate = newInputGate(gateLinks[IN](env), env.mb)
	t.out = newOutput[OUT](ctx, env)
	t.aligner = checkpoint.NewAligner(len(t.gate.inputs))
	t.cctx = &Context{ctx: ctx, env: env}
	if env.v.keyed {
		t.backend, err = env.att.newBackend(ctx, env)
		if err != nil {
			return err
		}
		t.cctx.backend = t.backend
		defer t.backend.Close()
	}
	if err := t.p.open(t.cctx); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	if c, ok := t.p.user().(io.Closer); ok {
		defer c.Close()
	}
	if t.sink != nil && t.sink.prep != nil {
		defer t.sink.prep.stop() // before Close
	}
	for {
		for _, c := range env.mb.drain() {
			if err := t.control(ctx, c); err != nil {
				return err
			}
		}
		m, in, ok, err := t.gate.receive(ctx)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		done, err := t.handle(ctx, m, in)
		if err != nil || done {
			return err
		}
	}
}

// handle processes one message; done is set after the last end of stream.
func (t *oneInputTask[IN, OUT]) handle(ctx context.Context, m message[IN], in int) (done bool, err error) {
	switch m.kind {
	case msgData:
		t.env.recordsIn.Add(int64(len(m.records)))
		if err := t.p.process(m.records, t.out); err != nil {
			return false, err
		}
		t.gate.inputs[in].recycle(m.records)
		return false, t.out.flush()
	case msgWatermark:
		if wm, advanced := t.gate.updateWatermark(in, m.watermark); advanced {
			return false, t.advanceWatermark(wm)
		}
	case msgBarrier:
		return false, t.align(ctx, checkpoint.BarrierIn{Input: in, Barrier: m.barrier})
	case msgEndOfData:
		if !t.gate.dataEnded[in] {
			t.gate.dataEnded[in] = true
			t.gate.dataLive--
		}
		if wm, advanced := t.gate.recomputeWatermark(); advanced {
			if err := t.advanceWatermark(wm); err != nil {
				return false, err
			}
		}
		if t.gate.dataLive == 0 {
			if h, ok := t.p.user().(EndInputHandler[OUT]); ok {
				if err := h.EndInput(t.out); err != nil {
					return false, fmt.Errorf("end input: %w", err)
				}
			}
			return false, t.out.broadcast(message[OUT]{kind: msgEndOfData})
		}
	case msgEndOfStream:
		t.gate.ended[in] = true
		t.gate.live--
		if err := t.align(ctx, checkpoint.InputEnded{Input: in}); err != nil {
			return false, err
		}
		if t.gate.live == 0 {
			return true, t.finish(ctx)
		}
	}
	return false, nil
}

func (t *oneInputTask[IN, OUT]) advanceWatermark(wm int64) error {
	if h, ok := t.p.user().(WatermarkHandler[OUT]); ok {
		if err := h.ProcessWatermark(wm, t.out); err != nil {
			return fmt.Errorf("watermark %d: %w", wm, err)
		}
	}
	return t.out.watermark(wm)
}

func (t *oneInputTask[IN, OUT]) align(ctx context.Context, msg any) error {
	for _, e := range t.aligner.Step(msg) {
		switch e := e.(type) {
		case checkpoint.Block:
			if !slices.Contains(t.gate.blocked, true) {
				t.aligned = time.Now()
			}
			t.gate.blocked[e.Input] = true
		case checkpoint.UnblockAll:
			clear(t.gate.blocked)
		case checkpoint.Snapshot:
			if !t.aligned.IsZero() {
				t.env.lastAlignment.Store(int64(time.Since(t.aligned)))
				t.aligned = time.Time{}
			}
			if err := t.snapshot(ctx, e.Barrier); err != nil {
				return fmt.Errorf("checkpoint %d: %w", e.Barrier.ID, err)
			}
		case checkpoint.AbortAlignment:
			// The checkpoint was overtaken; the coordinator times it out.
		case checkpoint.ProtocolError:
			return fmt.Errorf("barrier alignment: %w", e.Err)
		default:
			return fmt.Errorf("barrier alignment: unexpected effect %T", e)
		}
	}
	return nil
}

// snapshot is the synchronous part of a checkpoint: capture state, pre-commit
// the sink, forward the barrier; the upload continues asynchronously.
func (t *oneInputTask[IN, OUT]) snapshot(ctx context.Context, b checkpoint.Barrier) error {
	env := t.env
	if err := env.att.fault(FaultSnapshot, env.id, b.ID); err != nil {
		return err
	}
	st := checkpoint.SubtaskState{Operator: env.v.name, Subtask: env.index}
	if s, ok := t.p.user().(Snapshotter); ok {
		vals, err := s.SnapshotState(b.ID)
		if err != nil {
			return fmt.Errorf("snapshot operator state: %w", err)
		}
		st.Values = vals
	}
	if t.sink != nil && t.sink.prep != nil {
		return t.sink.startPreCommit(ctx, b, st)
	}
	if t.sink != nil {
		cs, err := t.sink.preCommit(ctx, b.ID)
		if err != nil {
			return err
		}
		st.Committables = cs
	}
	var pending state.PendingSnapshot
	if t.backend != nil {
		st.KeyGroups = env.keyGroups
		var err error
		if pending, err = t.backend.Snapshot(b.ID); err != nil {
			return fmt.Errorf("snapshot keyed state: %w", err)
		}
	}
	if err := t.out.barrier(b); err != nil {
		return err
	}
	return env.att.acknowledge(ctx, env, b, st, pending)
}

func (t *oneInputTask[IN, OUT]) control(ctx context.Context, c control) error {
	switch c.kind {
	case ctlComplete:
		if t.sink != nil {
			if err := t.sink.commitUpTo(ctx, t.env, c.id); err != nil {
				return err
			}
		}
		if l, ok := t.p.user().(CheckpointListener); ok {
			if err := l.CheckpointComplete(c.id); err != nil {
				return fmt.Errorf("checkpoint %d complete: %w", c.id, err)
			}
		}
	case ctlAborted:
		if l, ok := t.p.user().(CheckpointListener); ok {
			l.CheckpointAborted(c.id)
		}
	case ctlFailed:
		return c.err
	}
	return nil
}

// finish runs after the last end of stream: forward it, and for a sink wait
// until the final checkpoint's transactions are committed.
func (t *oneInputTask[IN, OUT]) finish(ctx context.Context) error {
	if err := t.out.broadcast(message[OUT]{kind: msgEndOfStream}); err != nil {
		return err
	}
	for t.sink != nil && len(t.sink.pending) > 0 {
		for _, c := range t.env.mb.drain() {
			if err := t.control(ctx, c); err != nil {
				return err
			}
		}
		if len(t.sink.pending) == 0 {
			break
		}
		select {
		case <-t.env.mb.wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	return nil
}

// opProc runs a plain Operator.
type opProc[IN, OUT any] struct{ op Operator[IN, OUT] }

func (p *opProc[IN, OUT]) open(c *Context) error { return p.op.Open(c) }
func (p *opProc[IN, OUT]) process(r []IN, out *Output[OUT]) error {
	return p.op.ProcessBatch(r, out)
}
func (p *opProc[IN, OUT]) user() any { return p.op }

// keyedProc scopes keyed state to each record's key before calling the user.
type keyedProc[K, IN, OUT any] struct {
	op     KeyedOperator[K, IN, OUT]
	key    func(IN) K
	codec  state.Codec[K]
	b      state.Backend
	pf     state.Prefetcher // b, if it prefetches
	maxPar int
	// The keys of the records being processed: decoded, encoded (views
	// into buf) and their key groups.
	keys    []K
	buf     []byte
	encoded [][]byte
	kgs     []int
}

// prefetchAhead is how many records' keys are announced to a Prefetcher
// before they are processed: enough for their memory loads to overlap, few
// enough that what they load is still in the CPU caches when it is used.
const prefetchAhead = 32

func (p *keyedProc[K, IN, OUT]) open(c *Context) error {
	p.b, p.maxPar = c.backend, c.MaxParallelism()
	p.pf, _ = p.b.(state.Prefetcher)
	return p.op.Open(c)
}

func (p *keyedProc[K, IN, OUT]) process(records []IN, out *Output[OUT]) error {
	for len(records) > 0 {
		n := min(len(records), prefetchAhead)
		p.encodeKeys(records[:n])
		if p.pf != nil {
			p.pf.Prefetch(p.kgs, p.encoded)
		}
		for i := range n {
			p.b.SetCurrentKey(p.kgs[i], p.encoded[i])
			if err := p.op.Process(p.keys[i], records[i], out); err != nil {
				return err
			}
		}
		records = records[n:]
	}
	clear(p.keys) // keys may point into the batch, which is reused
	return nil
}

func (p *keyedProc[K, IN, OUT]) encodeKeys(records []IN) {
	p.keys, p.buf, p.encoded, p.kgs = p.keys[:0], p.buf[:0], p.encoded[:0], p.kgs[:0]
	ends := make([]int, 0, prefetchAhead)
	for i := range records {
		k := p.key(records[i])
		start := len(p.buf)
		p.buf = p.codec.Append(p.buf, k)
		p.keys = append(p.keys, k)
		ends = append(ends, len(p.buf))
		p.kgs = append(p.kgs, KeyGroup(p.buf[start:], p.maxPar))
	}
	// Slice only now: appending may have moved buf.
	start := 0
	for _, end := range ends {
		p.encoded = append(p.encoded, p.buf[start:end:end])
		start = end
	}
}

func (p *keyedProc[K, IN, OUT]) user() any { return p.op }
