package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

// The worker modes run in a child process of the suite (the suite's own
// binary with -worker), each with its embedded broker in the same process,
// as bench/kafka does, so that CPU and resident memory are per run and
// comparable with bench/kafka's rows.

type bytesMsg = kafka.Message[[]byte, []byte]

// workerThroughput runs the scenarios bench/kafka lacks, once each, on one
// input, and prints their results as JSON.
func workerThroughput(records, keys, valueSize int, verify bool, only, cpuProfile string) error {
	dir, err := os.MkdirTemp("", "onceflow-bench-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := devbroker.Start(devbroker.Config{DataDir: filepath.Join(dir, "kafka")})
	if err != nil {
		return err
	}
	defer b.Close()
	brokers := b.Addrs()
	ctx := context.Background()
	in := "suite-in"
	if err := kafka.CreateTopic(ctx, brokers, in, 4); err != nil {
		return err
	}
	if err := benchkit.WriteInput(ctx, brokers, in, records, keys, valueSize); err != nil {
		return err
	}
	type scen struct {
		name     string
		interval time.Duration
		count    bool
	}
	scens := []scen{
		{"onceflow pass-through, exactly-once, checkpoints every 1s (suite)", time.Second, false},
		{"onceflow pass-through, exactly-once, checkpoints every 100ms", 100 * time.Millisecond, false},
		{"keyed count, Pebble state, exactly-once, checkpointing off", 0, true},
		{"keyed count, Pebble state, exactly-once, checkpoints every 1s", time.Second, true},
		{"keyed count, Pebble state, exactly-once, checkpoints every 100ms", 100 * time.Millisecond, true},
	}
	var results []result
	for i, s := range scens {
		if !strings.Contains(s.name, only) {
			continue
		}
		out := fmt.Sprintf("suite-out-%d", i)
		if err := kafka.CreateTopic(ctx, brokers, out, 4); err != nil {
			return err
		}
		cps := &counter{}
		store, err := fsstore.Open(filepath.Join(dir, "ckpt-"+out))
		if err != nil {
			return err
		}
		cfg := engine.Config{Store: store, CheckpointInterval: s.interval, Restart: engine.NoRestart(), Listener: cps}
		var job *engine.Job
		read := &kafka.SourceCounters{}
		if s.count {
			job = kafkajob.Build(kafkajob.Options{Name: "suite-count", Brokers: brokers, Input: in, Output: out,
				TxnPrefix: "suite-" + out, Parallelism: 2, Bounded: true, Guarantee: kafka.ExactlyOnce, SourceCounters: read})
			cfg.StateBackend = pebblestate.New(pebblestate.Options{Dir: filepath.Join(dir, "state-"+out)})
		} else {
			job = copyJob(brokers, in, out, true, read)
		}
		// Every scenario starts with the memory of a fresh process: the
		// heap an earlier scenario grew would spare a later one the page
		// faults (measured: up to a fifth of a keyed run), and the
		// ratios between scenarios would depend on their order.
		debug.FreeOSMemory()
		stopProfile, err := benchkit.StartCPUProfile(profilePath(cpuProfile, i))
		if err != nil {
			return err
		}
		cpu0 := benchkit.CPUSeconds()
		start := time.Now()
		ended := make(chan struct{})
		steady := markSteady(read, int64(records/4), ended)
		err = engine.Run(ctx, job, cfg)
		end, cpu1 := time.Now(), benchkit.CPUSeconds()
		elapsed, cpu := end.Sub(start).Seconds(), cpu1-cpu0
		stopProfile()
		close(ended)
		from := <-steady
		if err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
		if verify && s.count {
			rep, err := kafkajob.Verify(ctx, brokers, in, out, false)
			if err != nil {
				return fmt.Errorf("%s: verify: %w", s.name, err)
			}
			if rep.Outputs != records {
				return fmt.Errorf("%s: verify: %v outputs for %d inputs", s.name, rep, records)
			}
		}
		if verify && !s.count {
			n := 0
			if err := kafka.ReadTopic(ctx, brokers, out, true, func(bytesMsg) error { n++; return nil }); err != nil {
				return err
			}
			if n != records {
				return fmt.Errorf("%s: verify: %d outputs for %d inputs", s.name, n, records)
			}
		}
		r := result{Scenario: s.name, Records: records, RecordsPerSec: float64(records) / elapsed,
			CPUSecPerMRec: cpu / (float64(records) / 1e6), Checkpoints: cps.n, MaxRSSMiB: benchkit.MaxRSSMiB(), ElapsedSeconds: elapsed}
		if n := records - int(from.records); from.records > 0 && n > 0 {
			r.SteadyRecordsPerSec = float64(n) / end.Sub(from.at).Seconds()
			r.SteadyCPUSecPerMRec = (cpu1 - from.cpu) / (float64(n) / 1e6)
		}
		results = append(results, r)
		if err := kafka.DeleteTopic(ctx, brokers, out); err != nil {
			return err
		}
		os.RemoveAll(filepath.Join(dir, "state-"+out))
	}
	return json.NewEncoder(os.Stdout).Encode(results)
}

// steadyMark is when the source had read a quarter of the input, and the
// process's CPU seconds then.
type steadyMark struct {
	records int64
	at      time.Time
	cpu     float64
}

// markSteady watches read until it reaches n and then sends the mark. A
// run's first quarter grows the heap, the write cache and the sort buffers:
// paid once per process (page faults cost about 3 ms per MiB here), it is a
// large share of a 5-second run, and little of a job that runs for hours.
// The steady figures are what checkpointing costs a running job. The channel
// gets a zero mark if the run ends first.
func markSteady(read *kafka.SourceCounters, n int64, ended <-chan struct{}) <-chan steadyMark {
	out := make(chan steadyMark, 1)
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ended:
				out <- steadyMark{}
				return
			case <-tick.C:
				if got := read.Records.Load(); got >= n {
					out <- steadyMark{records: got, at: time.Now(), cpu: benchkit.CPUSeconds()}
					return
				}
			}
		}
	}()
	return out
}

// profilePath names scenario i's CPU profile, "<path>.<i>" ("" profiles
// nothing): it covers the job's run only, not the input writing or the
// verification.
func profilePath(path string, i int) string {
	if path == "" {
		return ""
	}
	return fmt.Sprintf("%s.%d", path, i)
}

// copyJob copies keys and values unchanged (as bench/kafka's pass-through
// and its raw baseline do).
func copyJob(brokers []string, in, out string, bounded bool, read *kafka.SourceCounters) *engine.Job {
	job := engine.NewJob("suite-copy", engine.WithDefaultParallelism(2))
	src := kafka.Source(job, "in", kafka.SourceConfig[[]byte, []byte]{
		Brokers: brokers, Topics: []string{in}, Key: kafka.Bytes{}, Value: kafka.Bytes{}, Bounded: bounded, Counters: read,
	})
	kafka.Sink(src, "out", kafka.SinkConfig[bytesMsg]{
		Brokers: brokers, Topic: out, Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: "suite-" + out,
		Key:   kafka.SerializerFunc[bytesMsg](func(_ string, m bytesMsg) ([]byte, error) { return m.Key, nil }),
		Value: kafka.SerializerFunc[bytesMsg](func(_ string, m bytesMsg) ([]byte, error) { return m.Value, nil }),
	})
	return job
}

// workerLatency produces at a fixed rate records carrying their produce
// time, runs the exactly-once pass-through over them and measures, in a
// read_committed consumer of the output, now - produce time per record.
func workerLatency(rate int, interval, duration, warmup time.Duration) error {
	dir, err := os.MkdirTemp("", "onceflow-bench-suite-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := devbroker.Start(devbroker.Config{DataDir: filepath.Join(dir, "kafka")})
	if err != nil {
		return err
	}
	defer b.Close()
	brokers := b.Addrs()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	in, out := "lat-in", "lat-out"
	for _, t := range []string{in, out} {
		if err := kafka.CreateTopic(ctx, brokers, t, 4); err != nil {
			return err
		}
	}
	store, err := fsstore.Open(filepath.Join(dir, "ckpt"))
	if err != nil {
		return err
	}
	cps := &counter{}
	jobDone := make(chan error, 1)
	go func() {
		jobDone <- engine.Run(ctx, copyJob(brokers, in, out, false, nil), engine.Config{Store: store, CheckpointInterval: interval,
			Restart: engine.NoRestart(), Listener: cps})
	}()

	cons, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(out),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(10*time.Millisecond))
	if err != nil {
		return err
	}
	defer cons.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(in), kgo.ProducerLinger(0))
	if err != nil {
		return err
	}
	defer prod.Close()

	start := time.Now()
	measureFrom := start.Add(warmup).UnixNano()
	var produced atomic.Int64 // records produced at or after measureFrom
	prodDone := make(chan error, 1)
	go func() {
		var mu sync.Mutex
		var perr error
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		sent := 0
		pad := make([]byte, 92)
		for time.Since(start) < duration {
			<-t.C
			due := int(time.Since(start).Seconds() * float64(rate))
			for ; sent < due; sent++ {
				now := time.Now().UnixNano()
				v := binary.BigEndian.AppendUint64(nil, uint64(now))
				v = append(v, pad...)
				if now >= measureFrom {
					produced.Add(1)
				}
				prod.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(sent%100000)), Value: v}, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
					}
				})
			}
		}
		err := prod.Flush(ctx)
		mu.Lock()
		defer mu.Unlock()
		prodDone <- cmpErr(err, perr)
	}()

	var lats []time.Duration
	var seen int64
	var prodErr error
	producing := true
	deadline := start.Add(duration + 15*time.Second)
	for {
		if !producing && seen >= produced.Load() {
			break
		}
		if time.Now().After(deadline) {
			break
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cons.PollFetches(pctx)
		pcancel()
		now := time.Now().UnixNano()
		fetches.EachRecord(func(r *kgo.Record) {
			ts := int64(binary.BigEndian.Uint64(r.Value))
			if ts >= measureFrom {
				lats = append(lats, time.Duration(now-ts))
				seen++
			}
		})
		if producing {
			select {
			case prodErr = <-prodDone:
				producing = false
			default:
			}
		}
		select {
		case err := <-jobDone:
			return fmt.Errorf("job ended: %v", err)
		default:
		}
	}
	if prodErr != nil {
		return prodErr
	}
	cancel()
	<-jobDone
	if len(lats) == 0 {
		return fmt.Errorf("no record seen")
	}
	slices.Sort(lats)
	pct := func(p float64) float64 {
		return lats[min(len(lats)-1, int(float64(len(lats))*p))].Seconds() * 1000
	}
	res := result{Scenario: fmt.Sprintf("e2e latency, exactly-once pass-through, %d records/s, checkpoints every %v", rate, interval),
		Records: len(lats), RecordsPerSec: float64(rate), Checkpoints: cps.n,
		P50Ms: pct(0.5), P99Ms: pct(0.99), P999Ms: pct(0.999), MaxMs: lats[len(lats)-1].Seconds() * 1000, MaxRSSMiB: benchkit.MaxRSSMiB()}
	if missing := produced.Load() - seen; missing > 0 {
		res.Note = fmt.Sprintf("%d records not seen within 15s of the end", missing)
	}
	return json.NewEncoder(os.Stdout).Encode([]result{res})
}

func cmpErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

type counter struct{ n int }

func (c *counter) CheckpointCompleted(*checkpoint.Manifest, time.Duration) { c.n++ }
func (c *counter) CheckpointAborted(uint64, string)                        {}
func (c *counter) Restarting(int, error, time.Duration)                    {}
