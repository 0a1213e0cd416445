package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// rawCopy is the baseline: a franz-go consumer (read_committed, like the
// jobs) feeding an idempotent producer, flushed every second: what an
// at-least-once hand-written copier does. It ends when every input record
// was produced and acknowledged.
func rawCopy(ctx context.Context, e *env, out string) (int, error) {
	cons, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(e.in),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return 0, err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.DefaultProduceTopic(out))
	if err != nil {
		return 0, err
	}
	defer prod.Close()
	var mu sync.Mutex
	var perr error
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			mu.Lock()
			perr = err
			mu.Unlock()
		}
	}
	flushes := 0
	lastFlush := time.Now()
	for n := 0; n < e.records; {
		fetches := cons.PollRecords(ctx, 1024)
		if err := fetches.Err(); err != nil {
			return 0, err
		}
		for it := fetches.RecordIter(); !it.Done(); {
			r := it.Next()
			prod.Produce(ctx, &kgo.Record{Key: r.Key, Value: r.Value}, promise)
			n++
		}
		if time.Since(lastFlush) >= time.Second {
			if err := prod.Flush(ctx); err != nil {
				return 0, err
			}
			flushes++
			lastFlush = time.Now()
		}
	}
	if err := prod.Flush(ctx); err != nil {
		return 0, err
	}
	mu.Lock()
	defer mu.Unlock()
	if perr != nil {
		return 0, fmt.Errorf("produce: %w", perr)
	}
	return flushes + 1, nil
}
