package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
)

type msg = kafka.Message[[]byte, []byte]

// copyJob returns a scenario copying the input's keys and values unchanged,
// as the raw baseline does, bounded, with checkpoints every second.
func copyJob(g kafka.Guarantee) func(context.Context, *env, string) (int, error) {
	return func(ctx context.Context, e *env, out string) (int, error) {
		job := engine.NewJob("bench-copy", engine.WithDefaultParallelism(e.par))
		in := kafka.Source(job, "in", kafka.SourceConfig[[]byte, []byte]{
			Brokers: e.brokers, Topics: []string{e.in}, Key: kafka.Bytes{}, Value: kafka.Bytes{}, Bounded: true,
		})
		kafka.Sink(in, "out", kafka.SinkConfig[msg]{
			Brokers: e.brokers, Topic: out, Guarantee: g, TransactionalIDPrefix: "bench-" + out,
			Key:   kafka.SerializerFunc[msg](func(_ string, m msg) ([]byte, error) { return m.Key, nil }),
			Value: kafka.SerializerFunc[msg](func(_ string, m msg) ([]byte, error) { return m.Value, nil }),
		})
		store, err := fsstore.Open(fmt.Sprintf("%s/ckpt-%s", e.dir, out))
		if err != nil {
			return 0, err
		}
		cps := &counter{}
		err = engine.Run(ctx, job, engine.Config{Store: store, CheckpointInterval: time.Second, Restart: engine.NoRestart(), Listener: cps})
		return cps.n, err
	}
}

// verifyCopy checks that the committed output holds the input's records,
// each once: same count and same sum of record hashes (a multiset
// fingerprint; the tests prove exactness, this catches a broken run).
func verifyCopy(ctx context.Context, e *env, out string) error {
	fingerprint := func(topic string) (n int, sum uint64, err error) {
		err = kafka.ReadTopic(ctx, e.brokers, topic, true, func(m msg) error {
			h := fnv.New64a()
			h.Write(m.Key)
			h.Write([]byte{0})
			h.Write(m.Value)
			sum += h.Sum64()
			n++
			return nil
		})
		return n, sum, err
	}
	n1, s1, err := fingerprint(e.in)
	if err != nil {
		return err
	}
	n2, s2, err := fingerprint(out)
	if err != nil {
		return err
	}
	if n1 != n2 || s1 != s2 {
		return fmt.Errorf("output of %d records (fingerprint %x) is not the input of %d (%x)", n2, s2, n1, s1)
	}
	return nil
}
