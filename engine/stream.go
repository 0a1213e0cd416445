package engine

import (
	"errors"

	"github.com/onceflow/onceflow/engine/state"
)

// Stream is a typed stream of records produced by one or more operators
// (several after Union).
type Stream[T any] struct {
	job  *Job
	from []*vertex
}

// Job returns the job the stream belongs to.
func (s Stream[T]) Job() *Job { return s.job }

// KeyedStream is a stream partitioned by key: records with the same key reach
// the same subtask, and keyed state is scoped to the key.
type KeyedStream[K, T any] struct {
	stream Stream[T]
	key    func(T) K
	codec  state.Codec[K]
}

// KeyBy partitions s by key. The codec's encoding of a key decides its key
// group (and so its subtask) and names its state, so it must be stable across
// releases of the job.
func KeyBy[T, K any](s Stream[T], key func(T) K, codec state.Codec[K]) KeyedStream[K, T] {
	return KeyedStream[K, T]{stream: s, key: key, codec: codec}
}

// Union merges streams of the same type into one.
func Union[T any](streams ...Stream[T]) Stream[T] {
	if len(streams) == 0 {
		return Stream[T]{}
	}
	u := Stream[T]{job: streams[0].job}
	for _, s := range streams {
		if s.job != u.job {
			u.job.errs = append(u.job.errs, errUnionAcrossJobs)
			continue
		}
		u.from = append(u.from, s.from...)
	}
	return u
}

type partitioning int

const (
	// forward connects subtask i to subtask i (equal parallelism).
	forward partitioning = iota
	// rebalance spreads records round-robin over all consumer subtasks.
	rebalance
	// hashed sends each record to the subtask owning its key group.
	hashed
)

// anyEdge is the type-erased view of an edge, for graph checks and wiring.
type anyEdge interface {
	ends() edgeEnds
	// materialize creates the channels of one attempt.
	materialize(att *attempt)
}

type edgeEnds struct {
	from, to *vertex
	index    int // position in Job.edges: the key of its channels in an attempt
	part     partitioning
}

// edge carries records of type T from one producer vertex to one consumer.
type edge[T any] struct {
	edgeEnds
	// newKeyGroupFn returns a key-group function for one producer subtask
	// (each gets its own, as it reuses an encoding buffer).
	newKeyGroupFn func(maxParallelism int) func(T) int
}

func (e *edge[T]) ends() edgeEnds { return e.edgeEnds }

// connect adds edges from every producer of s into v.
func connect[T any](s Stream[T], v *vertex, keyGroupFn func(maxParallelism int) func(T) int) {
	for _, from := range s.from {
		e := &edge[T]{edgeEnds: edgeEnds{from: from, to: v, index: len(s.job.edges)}, newKeyGroupFn: keyGroupFn}
		if keyGroupFn != nil {
			e.part = hashed
		}
		s.job.edges = append(s.job.edges, e)
		from.outputs = append(from.outputs, e)
		v.inputs = append(v.inputs, e)
	}
}

// keyGroupFunc hashes the encoded key of each record.
func keyGroupFunc[K, T any](key func(T) K, codec state.Codec[K]) func(int) func(T) int {
	return func(maxPar int) func(T) int {
		var buf []byte
		return func(rec T) int {
			buf = codec.Append(buf[:0], key(rec))
			return KeyGroup(buf, maxPar)
		}
	}
}

var errUnionAcrossJobs = errors.New("union of streams from different jobs")
