package engine

import (
	"context"
	"math"
)

// inputGate is the input side of a subtask: one link per upstream subtask.
type inputGate[T any] struct {
	inputs []*pipe[T]
	wake   chan struct{}
	mb     *mailbox

	blocked   []bool
	ended     []bool // end of stream
	dataEnded []bool // end of data
	wms       []int64
	live      int
	dataLive  int
	wm        int64 // current minimum watermark
	next      int   // round-robin cursor for fairness between inputs
}

func newInputGate[T any](inputs []*pipe[T], mb *mailbox) *inputGate[T] {
	n := len(inputs)
	g := &inputGate[T]{
		inputs: inputs, wake: mb.wake, mb: mb,
		blocked: make([]bool, n), ended: make([]bool, n), dataEnded: make([]bool, n),
		wms: make([]int64, n), live: n, dataLive: n, wm: math.MinInt64,
	}
	for i := range g.wms {
		g.wms[i] = math.MinInt64
	}
	return g
}

// receive returns the next message from an unblocked input, or ok=false when
// control messages are waiting in the mailbox. It sleeps while there is
// nothing to do.
func (g *inputGate[T]) receive(ctx context.Context) (m message[T], input int, ok bool, err error) {
	n := len(g.inputs)
	for {
		if g.mb.pending() {
			return m, 0, false, nil
		}
		for k := 0; k < n; k++ {
			i := g.next + k
			if i >= n {
				i -= n
			}
			if g.blocked[i] || g.ended[i] {
				continue
			}
			select {
			case m = <-g.inputs[i].ch:
				g.next = i + 1
				if g.next == n {
					g.next = 0
				}
				return m, i, true, nil
			default:
			}
		}
		select {
		case <-g.wake:
		case <-ctx.Done():
			return m, 0, false, context.Cause(ctx)
		}
	}
}

// updateWatermark records input i's watermark and reports the new minimum
// over live inputs when it advanced.
func (g *inputGate[T]) updateWatermark(i int, wm int64) (int64, bool) {
	if wm > g.wms[i] {
		g.wms[i] = wm
	}
	return g.recomputeWatermark()
}

func (g *inputGate[T]) recomputeWatermark() (int64, bool) {
	lowest := int64(math.MaxInt64)
	any := false
	for i, w := range g.wms {
		if g.dataEnded[i] || g.ended[i] {
			continue
		}
		any = true
		if w < lowest {
			lowest = w
		}
	}
	// With every input at its end, event time is complete: the watermark
	// jumps to the maximum so that event-time operators flush (as Flink's
	// MAX_WATERMARK at end of input).
	if !any {
		lowest = math.MaxInt64
	}
	if lowest <= g.wm {
		return g.wm, false
	}
	g.wm = lowest
	return lowest, true
}
