package kafka

import (
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/engine"
)

// noteEnd remembers how far a partition's readable log reached when the
// broker answered this fetch: its last stable offset under read_committed
// (records past it are not readable yet), its high watermark otherwise.
// Every fetch carries them, so lag costs no extra request.
func (st *partState) noteEnd(fp *kgo.FetchPartition, readCommitted bool) {
	end := fp.HighWatermark
	if readCommitted && fp.LastStableOffset >= 0 {
		end = fp.LastStableOffset
	}
	st.end = end
}

// lag is how many offsets of the partition are readable but not read. It
// counts offsets, so control records and records of aborted transactions
// count too, until the reader has moved past them.
func (st *partState) lag() int64 {
	if st.done || st.pos.next < 0 { // nothing read yet: its end is unknown too
		return 0
	}
	return max(0, st.end-st.pos.next)
}

// ConnectorMetrics reports the reader's lag, summed over its partitions
// (engine.MetricsReporter). It is as fresh as the latest fetch of each
// partition: a caught-up reader reports 0 until a fetch brings new records.
func (r *reader[K, V]) ConnectorMetrics() engine.ConnectorMetrics {
	var lag int64
	for _, st := range r.order {
		lag += st.lag()
	}
	return engine.ConnectorMetrics{SourceLag: lag, HasSourceLag: true}
}
