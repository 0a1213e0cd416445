package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/onceflow/onceflow/internal/testjob/kafkajob"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
)

const group = "goka-count" // its table topic is goka-count-table

// measured is what one processor run cost, from its creation until every
// output was in the output topic, and what it did.
type measured struct {
	elapsed     time.Duration
	cpuSeconds  float64
	outputs     int64 // more than the inputs if some were processed again after a rebalance
	generations int   // partition assignments the processor received
}

// countGraph is the keyed count: per input record, read the key's count
// from the group table, add one, store it, and emit "key partition offset
// count" (kafkajob.Echo, the engine's job's output) keyed by the key.
func countGraph(in, out string) *goka.GroupGraph {
	return goka.DefineGroup(goka.Group(group),
		goka.Input(goka.Stream(in), new(codec.Bytes), func(ctx goka.Context, _ any) {
			var n int64
			if v := ctx.Value(); v != nil {
				n = v.(int64)
			}
			n++
			ctx.SetValue(n)
			echo := kafkajob.Echo{Key: ctx.Key(), Partition: ctx.Partition(), Offset: ctx.Offset(), N: n}
			ctx.Emit(goka.Stream(out), ctx.Key(), echo.Append(make([]byte, 0, 32)))
		}),
		goka.Output(goka.Stream(out), new(codec.Bytes)),
		goka.Persist(new(codec.Int64)),
	)
}

// configureGoka sets goka's global Sarama config: goka's defaults
// (at-least-once, acks from the leader, snappy, 100 ms / 64 KiB producer
// flushes) with one change: streams start at the oldest offset, because the
// input is written before the processor starts (goka's default, the newest
// offset, would skip all of it).
func configureGoka() {
	cfg := goka.DefaultConfig()
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	goka.ReplaceGlobalConfig(cfg)
}

// topicManager creates the group table with replication factor 1: the
// embedded broker is one broker, and goka's default of 2 is refused by it
// (INVALID_REPLICATION_FACTOR). The table is still created by goka, with
// the cleanup.policy=compact it asks for.
func topicManager() goka.TopicManagerBuilder {
	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	return goka.TopicManagerBuilderWithTopicManagerConfig(tmc)
}

// runCount runs one goka processor instance (as a goka application on one
// machine does: goka spreads partitions over instances, and one instance
// processes each of its partitions in a goroutine of its own) until it has
// committed the end of the input, then stops it. The measured window ends
// when the output topic first held all the outputs it ends with.
func runCount(ctx context.Context, brokers []string, in, out string, records int, storageDir, cpuProfile string) (measured, error) {
	configureGoka()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watch, err := newOffsetWatcher(brokers)
	if err != nil {
		return measured{}, fmt.Errorf("offset watcher: %w", err)
	}
	defer watch.close()

	stopProfile, err := benchkit.StartCPUProfile(cpuProfile)
	if err != nil {
		return measured{}, fmt.Errorf("cpu profile: %w", err)
	}
	defer stopProfile()
	var generations atomic.Int32 // assignments received: more than one is a rebalance
	cpu0 := benchkit.CPUSeconds()
	start := time.Now()
	proc, err := goka.NewProcessor(brokers, countGraph(in, out),
		goka.WithStorageBuilder(storage.DefaultBuilder(storageDir)), // LevelDB, goka's default storage
		goka.WithTopicManagerBuilder(topicManager()),
		goka.WithRebalanceCallback(func(goka.Assignment) { generations.Add(1) }),
	)
	if err != nil {
		return measured{}, fmt.Errorf("create processor: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()

	samples, err := watch.waitProcessed(ctx, group, in, out, done)
	stopProfile()
	if err != nil {
		return measured{}, fmt.Errorf("wait for the input to be processed: %w", err)
	}
	last := samples[len(samples)-1]
	first := last
	for _, s := range samples {
		if s.outputs >= last.outputs {
			first = s
			break
		}
	}
	m := measured{elapsed: first.at.Sub(start), cpuSeconds: first.cpu - cpu0, outputs: last.outputs,
		generations: int(generations.Load())}

	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		return m, fmt.Errorf("processor: %w", err)
	}
	if m.outputs < int64(records) {
		return m, fmt.Errorf("input processed, but the output holds %d records for %d inputs", m.outputs, records)
	}
	// Every SetValue also writes the table topic (goka's changelog), once
	// per processed input as every output is.
	table, err := watch.highWatermarks(context.Background(), string(goka.GroupTable(group)))
	if err != nil {
		return m, fmt.Errorf("table offsets: %w", err)
	}
	if n := sum(table); n != m.outputs {
		return m, fmt.Errorf("group table %s holds %d records for %d outputs", goka.GroupTable(group), n, m.outputs)
	}
	return m, nil
}
