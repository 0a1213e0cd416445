package kafka

import (
	"math"
	"time"
)

// partWatermark tracks one partition's event time.
type partWatermark struct {
	maxTS      int64 // newest record timestamp, Unix ms
	hasTS      bool
	lastActive time.Time // last record (or when reading started)
}

func (w *partWatermark) observe(ts int64) {
	if !w.hasTS || ts > w.maxTS {
		w.maxTS, w.hasTS = ts, true
	}
}

// Watermark is the minimum over the reader's partitions of their newest
// timestamp minus MaxOutOfOrderness. A partition idle for IdleTimeout no
// longer holds it back: its watermark follows the wall clock minus the idle
// timeout, which lets the others advance while it is quiet. A reader with no
// partitions behaves like one idle partition.
func (r *reader[K, V]) Watermark() (int64, bool) {
	ooo := r.cfg.MaxOutOfOrderness.Milliseconds()
	idle := r.cfg.IdleTimeout
	now := time.Now()
	idleWM := now.UnixMilli() - idle.Milliseconds() - ooo
	low, any := int64(math.MaxInt64), false
	for _, st := range r.order {
		if st.done {
			continue
		}
		w, ok := st.wm.maxTS-ooo-1, st.wm.hasTS
		if idle > 0 && now.Sub(st.wm.lastActive) >= idle && (!ok || idleWM > w) {
			w, ok = idleWM, true
		}
		if !ok {
			return 0, false // a partition that has not spoken yet holds everything back
		}
		low, any = min(low, w), true
	}
	if !any {
		if r.cfg.Bounded || idle <= 0 || now.Sub(r.started) < idle {
			return 0, false
		}
		return idleWM, true
	}
	return low, true
}
