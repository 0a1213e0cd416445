package engine

import (
	"context"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// Operator transforms one input stream. One instance runs per subtask; its
// methods are never called concurrently, so it needs no locks.
//
// Optional capabilities, detected by type assertion (like database/sql/driver):
// WatermarkHandler, EndInputHandler, Snapshotter, CheckpointListener, io.Closer.
type Operator[IN, OUT any] interface {
	// Open is called once per attempt, after state was restored.
	Open(ctx *Context) error
	// ProcessBatch handles records in order. It must not retain the
	// slice: the runtime reuses it once ProcessBatch returns (copy records
	// to keep them).
	ProcessBatch(records []IN, out *Output[OUT]) error
}

// KeyedOperator processes a keyed stream one record at a time. Before each
// call the keyed state (ctx.State() from Open) is scoped to the record's key.
// The same optional capabilities as for Operator apply.
type KeyedOperator[K, IN, OUT any] interface {
	Open(ctx *Context) error
	Process(key K, record IN, out *Output[OUT]) error
}

// WatermarkHandler is told when the operator's input watermark advances
// (the minimum over its inputs). The watermark is forwarded after it returns.
type WatermarkHandler[OUT any] interface {
	ProcessWatermark(wm int64, out *Output[OUT]) error
}

// EndInputHandler is called once every input reached its end of data (bounded
// jobs), before the final checkpoint: emit end-of-input results here.
type EndInputHandler[OUT any] interface {
	EndInput(out *Output[OUT]) error
}

// Snapshotter contributes non-keyed operator state to a checkpoint. It runs in
// the synchronous part of the snapshot. On restore the values come back
// through Context.RestoredValues.
type Snapshotter interface {
	SnapshotState(checkpointID uint64) ([]checkpoint.NamedValue, error)
}

// CheckpointListener is told when a checkpoint completed or was aborted.
type CheckpointListener interface {
	CheckpointComplete(checkpointID uint64) error
	CheckpointAborted(checkpointID uint64)
}

// Context is what a subtask knows about itself.
type Context struct {
	ctx     context.Context
	env     *taskEnv
	backend state.Backend
}

// Context returns the subtask's context, cancelled when the attempt ends.
func (c *Context) Context() context.Context { return c.ctx }

// Job returns the job name.
func (c *Context) Job() string { return c.env.att.job.name }

// Operator returns the operator's name.
func (c *Context) Operator() string { return c.env.v.name }

// Subtask returns this subtask's index in [0, Parallelism).
func (c *Context) Subtask() int { return c.env.index }

// Parallelism returns the operator's parallelism in this attempt.
func (c *Context) Parallelism() int { return c.env.parallelism }

// MaxParallelism returns the job's number of key groups.
func (c *Context) MaxParallelism() int { return c.env.att.job.maxParallelism }

// Attempt returns a token unique to this run of the subtask: transactional
// sinks use it to tell their own open transactions from an earlier
// incarnation's.
func (c *Context) Attempt() string { return c.env.att.token }

// State returns the keyed state backend (keyed operators only; nil otherwise).
func (c *Context) State() state.Backend { return c.backend }

// RestoredCheckpoint returns the id of the checkpoint this attempt restored,
// or 0 on a fresh start.
func (c *Context) RestoredCheckpoint() uint64 { return c.env.restored.checkpointID }

// RestoredValues returns the operator state this subtask restored (see
// Snapshotter). After rescaling, old subtask j's values go to new subtask
// j mod parallelism.
func (c *Context) RestoredValues() []checkpoint.NamedValue { return c.env.restored.values }

// Transform applies an operator to s. newOp is called once per subtask.
func Transform[IN, OUT any](s Stream[IN], name string, newOp func() Operator[IN, OUT], opts ...OperatorOption) Stream[OUT] {
	j := s.job
	v := j.addVertex(name, kindOperator, opts)
	connect(s, v, nil)
	v.newTask = func(env *taskEnv) (taskRunner, error) {
		return newOneInputTask(env, &opProc[IN, OUT]{op: newOp()}), nil
	}
	return Stream[OUT]{job: j, from: []*vertex{v}}
}

// TransformKeyed applies a keyed operator to ks: records are routed to the
// subtask owning their key group and the operator sees keyed state.
func TransformKeyed[K, IN, OUT any](ks KeyedStream[K, IN], name string, newOp func() KeyedOperator[K, IN, OUT], opts ...OperatorOption) Stream[OUT] {
	j := ks.stream.job
	v := j.addVertex(name, kindOperator, opts)
	v.keyed = true
	connect(ks.stream, v, keyGroupFunc(ks.key, ks.codec))
	v.newTask = func(env *taskEnv) (taskRunner, error) {
		return newOneInputTask(env, &keyedProc[K, IN, OUT]{op: newOp(), key: ks.key, codec: ks.codec}), nil
	}
	return Stream[OUT]{job: j, from: []*vertex{v}}
}
