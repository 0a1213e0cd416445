package checkpoint

import (
	"errors"
	"fmt"
)

// ErrProtocolViolation is wrapped by every ProtocolError.
var ErrProtocolViolation = errors.New("checkpoint barrier protocol violation")

// ProtocolError is the aligner's effect for input that the protocol forbids: a
// barrier or end of stream read from an input the aligner blocked, a barrier
// after the end of an input, an unknown input, two barriers with the same id
// but different kinds. It means the runtime is broken, not that a checkpoint
// failed: the caller must fail the task (and so restart the job from its
// latest completed checkpoint) rather than go on with an alignment that can no
// longer be trusted. The aligner's state is unchanged by the offending message.
//
// ProtocolError is also an error, so the caller can return it as it is.
type ProtocolError struct{ Err error }

func (e ProtocolError) Error() string { return e.Err.Error() }
func (e ProtocolError) Unwrap() error { return e.Err }

// Aligner aligns checkpoint barriers for a subtask with several inputs, as in
// Flink's aligned checkpoints: an input that delivered barrier n is blocked
// until every live input delivered n, so that the snapshot reflects exactly
// the records before n on every input. It is a pure state machine: the caller
// reads inputs, feeds it BarrierIn and InputEnded, and executes the effects in
// order (Block, UnblockAll, Snapshot, AbortAlignment, ProtocolError).
//
// Checkpoint ids start at 1: the aligner treats every id <= the last one it
// snapshotted or abandoned (initially 0) as stale.
type Aligner struct {
	live    []bool // not ended
	blocked []bool // delivered the barrier being aligned
	nLive   int

	aligning bool
	current  Barrier // barrier being aligned, when aligning
	arrived  int     // live inputs that delivered current

	done uint64 // latest id snapshotted or abandoned
}

// NewAligner returns an aligner for a subtask with the given number of inputs,
// all live and unblocked. It panics if inputs < 1: a subtask without inputs is
// a source, which injects barriers instead of aligning them.
func NewAligner(inputs int) *Aligner {
	if inputs < 1 {
		panic(fmt.Sprintf("checkpoint: NewAligner(%d): need at least one input", inputs))
	}
	a := &Aligner{live: make([]bool, inputs), blocked: make([]bool, inputs), nLive: inputs}
	for i := range a.live {
		a.live[i] = true
	}
	return a
}

// Step applies a BarrierIn or InputEnded and returns the effects to execute in
// order. Any other message type is a wiring bug and panics.
func (a *Aligner) Step(msg any) []Effect {
	switch m := msg.(type) {
	case BarrierIn:
		return a.barrier(m.Input, m.Barrier)
	case InputEnded:
		return a.end(m.Input)
	}
	panic(fmt.Sprintf("checkpoint: aligner: unexpected message %T", msg))
}

func (a *Aligner) barrier(in int, b Barrier) []Effect {
	if in < 0 || in >= len(a.live) {
		return violation("barrier %d on input %d: the subtask has %d inputs", b.ID, in, len(a.live))
	}
	if !a.live[in] {
		return violation("barrier %d on input %d after its end of stream", b.ID, in)
	}
	// A blocked input must not be read at all: whatever it yields, the
	// snapshot would no longer be aligned.
	if a.blocked[in] {
		return violation("barrier %d on input %d, blocked since it delivered barrier %d", b.ID, in, a.current.ID)
	}
	if b.ID <= a.done {
		return nil // stale: already snapshotted or abandoned here
	}
	if !a.aligning {
		return a.start(in, b)
	}
	switch {
	case b.ID < a.current.ID:
		// The inputs that delivered the current barrier passed this one
		// without it: it was abandoned upstream and can never align here.
		return nil
	case b.ID == a.current.ID:
		if b != a.current {
			return violation("barrier %d on input %d is %v (final=%t), on other inputs %v (final=%t)",
				b.ID, in, b.Kind, b.Final, a.current.Kind, a.current.Final)
		}
		a.arrived++
		if a.arrived == a.nLive {
			return a.snapshot() // no Block: it would be undone at once
		}
		a.blocked[in] = true
		return []Effect{Block{Input: in}}
	}
	// A newer barrier overtook the one being aligned: that one was
	// abandoned upstream (the coordinator aborted it), so stop waiting for
	// it and align the newer one instead.
	out := []Effect{AbortAlignment{ID: a.current.ID}, UnblockAll{}}
	a.done = a.current.ID
	a.reset()
	return append(out, a.start(in, b)...)
}

// start begins aligning b, first delivered by input in.
func (a *Aligner) start(in int, b Barrier) []Effect {
	if a.nLive == 1 {
		a.done = b.ID
		return []Effect{Snapshot{Barrier: b}}
	}
	a.aligning, a.current, a.arrived = true, b, 1
	a.blocked[in] = true
	return []Effect{Block{Input: in}}
}

func (a *Aligner) end(in int) []Effect {
	if in < 0 || in >= len(a.live) {
		return violation("end of input %d: the subtask has %d inputs", in, len(a.live))
	}
	if !a.live[in] {
		return violation("input %d ended twice", in)
	}
	// An upstream subtask ends only after its final checkpoint, so its
	// end of stream cannot follow a barrier that is still aligning.
	if a.blocked[in] {
		return violation("end of input %d, blocked since it delivered barrier %d", in, a.current.ID)
	}
	a.live[in] = false
	a.nLive--
	// The ended input will never deliver the barrier: the others may now
	// be all there is to wait for.
	if a.aligning && a.arrived == a.nLive {
		return a.snapshot()
	}
	return nil
}

func (a *Aligner) snapshot() []Effect {
	b := a.current
	a.done = b.ID
	a.reset()
	return []Effect{Snapshot{Barrier: b}, UnblockAll{}}
}

func (a *Aligner) reset() {
	a.aligning, a.current, a.arrived = false, Barrier{}, 0
	clear(a.blocked)
}

func violation(format string, args ...any) []Effect {
	return []Effect{ProtocolError{Err: fmt.Errorf("%w: %s", ErrProtocolViolation, fmt.Sprintf(format, args...))}}
}

// Blocked reports whether input is blocked: it delivered the barrier being
// aligned and must not be read until UnblockAll.
func (a *Aligner) Blocked(input int) bool {
	return input >= 0 && input < len(a.blocked) && a.blocked[input]
}

// Aligning returns the barrier being aligned, if any.
func (a *Aligner) Aligning() (Barrier, bool) { return a.current, a.aligning }

// Live reports whether input has not ended.
func (a *Aligner) Live(input int) bool {
	return input >= 0 && input < len(a.live) && a.live[input]
}
