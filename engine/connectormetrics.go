package engine

import (
	"sync/atomic"
	"time"
)

// MetricsReporter is an optional capability of a SourceReader or a
// SinkWriter: gauges about the external system that only the connector
// knows, such as how far a source is behind its input.
//
// The engine calls ConnectorMetrics from the subtask's own goroutine (after
// each batch read or written, and after each barrier), never concurrently
// with the reader's or writer's other methods, so it needs no locking. It
// is called often and must be cheap: return what is at hand, never ask the
// external system.
type MetricsReporter interface {
	ConnectorMetrics() ConnectorMetrics
}

// ConnectorMetrics are the gauges a MetricsReporter reports. Fields a
// connector does not know stay zero.
type ConnectorMetrics struct {
	// SourceLag is how many records the reader is behind the end of its
	// input, summed over its splits. Valid when HasSourceLag.
	SourceLag    int64
	HasSourceLag bool
	// Transactional says the sink writes into transactions, so that
	// OpenTransactionSince (zero: none open) is meaningful.
	Transactional bool
	// OpenTransactionSince is when the first record was written into the
	// sink's open transaction.
	OpenTransactionSince time.Time
}

// connectorGauges are a subtask's latest ConnectorMetrics, published by its
// goroutine and read by Status from any other: plain atomics, since a
// lock (or an allocation) per batch would cost the record path.
type connectorGauges struct {
	hasLag        atomic.Bool
	lag           atomic.Int64
	transactional atomic.Bool
	openSince     atomic.Int64 // unix nanoseconds; 0: no transaction open
}

func (g *connectorGauges) publish(m ConnectorMetrics) {
	g.lag.Store(m.SourceLag)
	g.hasLag.Store(m.HasSourceLag)
	var since int64
	if !m.OpenTransactionSince.IsZero() {
		since = m.OpenTransactionSince.UnixNano()
	}
	g.openSince.Store(since)
	g.transactional.Store(m.Transactional)
}

// addTo folds the subtask's gauges into its operator's status: lags add up
// (the operator is as far behind as all its subtasks together), and the
// open transaction age is the oldest one (the first to expire).
func (g *connectorGauges) addTo(o *OperatorStatus, now time.Time) {
	if g.hasLag.Load() {
		lag := g.lag.Load()
		if o.SourceLagRecords != nil {
			lag += *o.SourceLagRecords
		}
		o.SourceLagRecords = &lag
	}
	if g.transactional.Load() {
		var age int64
		if since := g.openSince.Load(); since != 0 {
			age = max(0, now.UnixNano()-since)
		}
		if o.OpenTransactionAgeNanos != nil {
			age = max(age, *o.OpenTransactionAgeNanos)
		}
		o.OpenTransactionAgeNanos = &age
	}
}

// publishMetrics publishes what r reports; r is nil when the connector
// reports nothing.
func publishMetrics(g *connectorGauges, r MetricsReporter) {
	if r != nil {
		g.publish(r.ConnectorMetrics())
	}
}
