package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/connectors/kafka"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
)

// recovery measures, for a job whose Pebble state holds keys keys, the time
// from SIGKILL to the first output record committed by the restarted
// process, keeping (local) or removing the Pebble local directory before
// the restart. brokers is a broker that outlives the job (the suite's).
func recovery(bin string, brokers []string, dir string, keys int, local bool) (result, error) {
	name := fmt.Sprintf("recovery, %d keys in Pebble state, %s", keys, map[bool]string{true: "local recovery (local dir kept)", false: "no local recovery (local dir removed)"}[local])
	res := result{Scenario: name, Records: keys}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tag := fmt.Sprintf("%d-%v", keys, local)
	in, out := "rec-in-"+tag, "rec-out-"+tag
	for _, t := range []string{in, out} {
		if err := kafka.CreateTopic(ctx, brokers, t, 4); err != nil {
			return res, err
		}
	}
	// One record per key: after they are all counted, the state holds keys keys.
	if err := benchkit.WriteInput(ctx, brokers, in, keys, keys, 20); err != nil {
		return res, err
	}
	storeDir, stateDir := filepath.Join(dir, "store-"+tag), filepath.Join(dir, "state-"+tag)
	start := func(gen string) (*exec.Cmd, *bytes.Buffer, error) {
		cmd := exec.Command(bin, "-brokers", brokers[0], "-in", in, "-out", out, "-store", storeDir, "-state-dir", stateDir,
			"-interval", "1s", "-gen", gen)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		return cmd, &stderr, cmd.Start()
	}

	// The read_committed consumer: counts outputs and notes when the first
	// one of generation 2 arrives.
	var outputs atomic.Int64
	gen2 := make(chan time.Time, 1)
	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		return res, err
	}
	defer cons.Close()
	go func() {
		for ctx.Err() == nil {
			fetches := cons.PollFetches(ctx)
			now := time.Now()
			fetches.EachRecord(func(r *kgo.Record) {
				outputs.Add(1)
				if bytes.HasPrefix(r.Value, []byte("2:")) {
					select {
					case gen2 <- now:
					default:
					}
				}
			})
		}
	}()

	job, stderr, err := start("1")
	if err != nil {
		return res, err
	}
	defer func() {
		if job.Process != nil {
			job.Process.Kill()
			job.Wait()
		}
	}()
	loadStart := time.Now()
	for outputs.Load() < int64(keys) {
		if time.Since(loadStart) > 10*time.Minute {
			return res, fmt.Errorf("state not loaded after 10 minutes: %d outputs; job: %s", outputs.Load(), stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Keep input flowing (1000 records/s over the same keys) so that there is
	// output to commit after the restart, and let a few more checkpoints pass.
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(in))
		if err != nil {
			return
		}
		defer cl.Close()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for ctx.Err() == nil {
			<-t.C
			for range 10 {
				cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(rand.IntN(keys))), Value: []byte("x")}, nil)
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	killed := time.Now()
	if err := job.Process.Kill(); err != nil {
		return res, err
	}
	job.Wait()
	if !local {
		if err := os.RemoveAll(stateDir); err != nil {
			return res, err
		}
	}
	job, stderr, err = start("2")
	if err != nil {
		return res, err
	}
	select {
	case t := <-gen2:
		res.RecoverySeconds = t.Sub(killed).Seconds()
	case <-time.After(2 * time.Minute):
		return res, fmt.Errorf("no output from the restarted job within 2 minutes; job: %s", stderr)
	}
	return res, nil
}
