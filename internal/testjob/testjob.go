// Package testjob is the self-verifying keyed-count job shared by the chaos
// tests, the SIGKILL tests and the benchmarks: datagen -> KeyBy -> count ->
// file sink, with an oracle computed from the input alone.
package testjob

import (
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
)

// Splits of the generated input. Keys must be a multiple of it: then every
// record of a key comes from one split, in order, so the count emitted for a
// record is known in advance whatever the parallelism and the failures.
const Splits = 4

// Options shape the job.
type Options struct {
	Name        string
	Records     uint64
	Keys        int
	Rate        float64 // per source subtask; 0 = unlimited
	Parallelism int     // of every operator
	OutDir      string
	// Fault, if set, is called for every record the counter processes (it
	// may return an error or panic to inject a failure there).
	Fault func(seq uint64) error
	// Pause, if set, holds back input record seq while it returns true.
	Pause func(seq uint64) bool
	// SyncPreCommit hides the file sink's asynchronous pre-commit
	// (engine.AsyncPreCommitter), so that the engine pre-commits on the
	// record path, as it does for sinks without one.
	SyncPreCommit bool
}

// Event is one input record.
type Event struct{ Seq, Key uint64 }

// Count is one output record: the key's count after this event.
type Count struct {
	Key, Seq uint64
	N        int64
}

// Build returns the job.
func Build(o Options) *engine.Job {
	job := engine.NewJob(o.Name, engine.WithDefaultParallelism(o.Parallelism))
	keys := uint64(o.Keys)
	events := datagen.Source(job, "events", datagen.Config[Event]{
		Generate:      func(seq uint64) Event { return Event{Seq: seq, Key: seq % keys} },
		Count:         o.Records,
		Splits:        Splits,
		RatePerSecond: o.Rate,
		Pause:         o.Pause,
	})
	byKey := engine.KeyBy(events, func(e Event) uint64 { return e.Key }, state.Uint64)
	counts := engine.TransformKeyed(byKey, "count", func() engine.KeyedOperator[uint64, Event, Count] {
		return &counter{fault: o.Fault}
	})
	cfg := file.SinkConfig[Count]{Dir: o.OutDir, Encode: Encode}
	engine.Sink(counts, "out", func(ctx *engine.Context) (engine.SinkWriter[Count], error) {
		w, err := file.NewWriter(ctx, "out", cfg)
		if err != nil || !o.SyncPreCommit {
			return w, err
		}
		return syncPreCommit{w, w.(engine.TransactionalSink), w.(io.Closer)}, nil
	})
	return job
}

// syncPreCommit is a file sink writer without its StartPreCommit.
type syncPreCommit struct {
	engine.SinkWriter[Count]
	engine.TransactionalSink
	io.Closer
}

type counter struct {
	fault func(uint64) error
	n     *state.Value[int64]
}

func (c *counter) Open(ctx *engine.Context) (err error) {
	c.n, err = state.NewValue(ctx.State(), "n", state.Int64)
	return err
}

func (c *counter) Process(key uint64, e Event, out *engine.Output[Count]) error {
	if c.fault != nil {
		if err := c.fault(e.Seq); err != nil {
			return err
		}
	}
	n, _, err := c.n.Get()
	if err != nil {
		return err
	}
	n++
	if err := c.n.Set(n); err != nil {
		return err
	}
	out.Emit(Count{Key: key, Seq: e.Seq, N: n})
	return nil
}

// Encode writes "key seq count".
func Encode(dst []byte, c Count) []byte {
	dst = strconv.AppendUint(dst, c.Key, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, c.Seq, 10)
	dst = append(dst, ' ')
	return strconv.AppendInt(dst, c.N, 10)
}

// Oracle returns the exact committed output, sorted, for the input alone.
func Oracle(records uint64, keys int) []string {
	out := make([]string, 0, records)
	for seq := uint64(0); seq < records; seq++ {
		out = append(out, string(Encode(nil, Count{Key: seq % uint64(keys), Seq: seq, N: int64(seq/uint64(keys)) + 1})))
	}
	slices.Sort(out)
	return out
}

// Verify compares committed output lines with the oracle.
func Verify(lines []string, records uint64, keys int) error {
	got := slices.Clone(lines)
	slices.Sort(got)
	return Compare(got, Oracle(records, keys))
}

// Compare describes how the sorted committed output got differs from the
// sorted oracle want: missing lines are lost output, extra lines duplicates
// or phantoms.
func Compare(got, want []string) error {
	if slices.Equal(got, want) {
		return nil
	}
	var missing, extra []string
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case j >= len(got) || (i < len(want) && want[i] < got[j]):
			missing = append(missing, want[i])
			i++
		case i >= len(want) || got[j] < want[i]:
			extra = append(extra, got[j])
			j++
		default:
			i++
			j++
		}
	}
	return fmt.Errorf("committed output differs from the oracle: %d lines, want %d; %d missing (lost) e.g. %q; %d extra (duplicate or phantom) e.g. %q",
		len(got), len(want), len(missing), head(missing), len(extra), head(extra))
}

func head(s []string) []string { return s[:min(len(s), 5)] }
