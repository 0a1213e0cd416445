package main

import (
	"context"
	"fmt"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

// countJob runs the kafkajob keyed count (memory state) exactly once,
// bounded, with checkpoints every second in a local directory.
func countJob(ctx context.Context, e *env, out string) (int, error) {
	job := kafkajob.Build(kafkajob.Options{Name: "bench-count", Brokers: e.brokers, Input: e.in, Output: out,
		TxnPrefix: "bench-" + out, Parallelism: e.par, Bounded: true, Guarantee: kafka.ExactlyOnce})
	store, err := fsstore.Open(fmt.Sprintf("%s/ckpt-%s", e.dir, out))
	if err != nil {
		return 0, err
	}
	cps := &counter{}
	err = engine.Run(ctx, job, engine.Config{Store: store, CheckpointInterval: time.Second,
		Restart: engine.NoRestart(), StateBackend: state.Memory, Listener: cps})
	return cps.n, err
}

// verifyCount checks the keyed count's output against its oracle.
func verifyCount(ctx context.Context, e *env, out string) error {
	rep, err := kafkajob.Verify(ctx, e.brokers, e.in, out, false)
	if err != nil {
		return err
	}
	if rep.Outputs != e.records {
		return fmt.Errorf("%w: %v", errShort, rep)
	}
	return nil
}

type counter struct{ n int }

func (c *counter) CheckpointCompleted(*checkpoint.Manifest, time.Duration) { c.n++ }
func (c *counter) CheckpointAborted(uint64, string)                        {}
func (c *counter) Restarting(int, error, time.Duration)                    {}
