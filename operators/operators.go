// Package operators holds typed building blocks built only on engine's public
// interfaces: Map, Filter, FlatMap, Reduce, Aggregate.
package operators

import (
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
)

// Map applies fn to every record. An error fails the job (and so restores it
// from the latest checkpoint), naming the operator.
func Map[IN, OUT any](s engine.Stream[IN], name string, fn func(IN) (OUT, error), opts ...engine.OperatorOption) engine.Stream[OUT] {
	return engine.Transform(s, name, func() engine.Operator[IN, OUT] { return &mapOp[IN, OUT]{fn: fn} }, opts...)
}

type mapOp[IN, OUT any] struct{ fn func(IN) (OUT, error) }

func (m *mapOp[IN, OUT]) Open(*engine.Context) error { return nil }
func (m *mapOp[IN, OUT]) ProcessBatch(in []IN, out *engine.Output[OUT]) error {
	for i := range in {
		v, err := m.fn(in[i])
		if err != nil {
			return err
		}
		out.Emit(v)
	}
	return nil
}

// Filter keeps the records for which keep returns true.
func Filter[T any](s engine.Stream[T], name string, keep func(T) bool, opts ...engine.OperatorOption) engine.Stream[T] {
	return engine.Transform(s, name, func() engine.Operator[T, T] { return &filterOp[T]{keep: keep} }, opts...)
}

type filterOp[T any] struct{ keep func(T) bool }

func (f *filterOp[T]) Open(*engine.Context) error { return nil }
func (f *filterOp[T]) ProcessBatch(in []T, out *engine.Output[T]) error {
	for i := range in {
		if f.keep(in[i]) {
			out.Emit(in[i])
		}
	}
	return nil
}

// FlatMap calls fn for every record; fn emits any number of outputs.
func FlatMap[IN, OUT any](s engine.Stream[IN], name string, fn func(in IN, emit func(OUT)) error, opts ...engine.OperatorOption) engine.Stream[OUT] {
	return engine.Transform(s, name, func() engine.Operator[IN, OUT] { return &flatMapOp[IN, OUT]{fn: fn} }, opts...)
}

type flatMapOp[IN, OUT any] struct {
	fn   func(IN, func(OUT)) error
	emit func(OUT)
	out  *engine.Output[OUT]
}

func (f *flatMapOp[IN, OUT]) Open(*engine.Context) error {
	// One closure per subtask, not per record.
	f.emit = func(v OUT) { f.out.Emit(v) }
	return nil
}

func (f *flatMapOp[IN, OUT]) ProcessBatch(in []IN, out *engine.Output[OUT]) error {
	f.out = out
	for i := range in {
		if err := f.fn(in[i], f.emit); err != nil {
			return err
		}
	}
	return nil
}

// Aggregate folds the records of each key into an accumulator kept in keyed
// state (encoded with codec) and emits result(key, acc) after every record.
func Aggregate[K, IN, ACC, OUT any](ks engine.KeyedStream[K, IN], name string, codec state.Codec[ACC],
	add func(acc ACC, in IN) ACC, result func(key K, acc ACC) OUT, opts ...engine.OperatorOption) engine.Stream[OUT] {
	return engine.TransformKeyed(ks, name, func() engine.KeyedOperator[K, IN, OUT] {
		return &aggregateOp[K, IN, ACC, OUT]{codec: codec, add: add, result: result}
	}, opts...)
}

type aggregateOp[K, IN, ACC, OUT any] struct {
	codec  state.Codec[ACC]
	add    func(ACC, IN) ACC
	result func(K, ACC) OUT
	acc    *state.Value[ACC]
}

func (a *aggregateOp[K, IN, ACC, OUT]) Open(ctx *engine.Context) (err error) {
	a.acc, err = state.NewValue(ctx.State(), "acc", a.codec)
	return err
}

func (a *aggregateOp[K, IN, ACC, OUT]) Process(key K, in IN, out *engine.Output[OUT]) error {
	acc, _, err := a.acc.Get()
	if err != nil {
		return err
	}
	acc = a.add(acc, in)
	if err := a.acc.Set(acc); err != nil {
		return err
	}
	out.Emit(a.result(key, acc))
	return nil
}

// Reduce combines the records of each key with reduce and emits the running
// result after every record.
func Reduce[K, T any](ks engine.KeyedStream[K, T], name string, codec state.Codec[T], reduce func(acc, in T) T, opts ...engine.OperatorOption) engine.Stream[T] {
	return engine.TransformKeyed(ks, name, func() engine.KeyedOperator[K, T, T] {
		return &reduceOp[K, T]{codec: codec, reduce: reduce}
	}, opts...)
}

type reduceOp[K, T any] struct {
	codec  state.Codec[T]
	reduce func(T, T) T
	st     *state.Reducing[T]
}

func (r *reduceOp[K, T]) Open(ctx *engine.Context) (err error) {
	r.st, err = state.NewReducing(ctx.State(), "reduce", r.codec, r.reduce)
	return err
}

func (r *reduceOp[K, T]) Process(_ K, in T, out *engine.Output[T]) error {
	v, err := r.st.Add(in)
	if err != nil {
		return err
	}
	out.Emit(v)
	return nil
}
