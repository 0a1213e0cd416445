package main

import (
	"context"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// writeInput writes records keyed k0..k<keys-1> round-robin, each value of
// valueSize bytes (its sequence number, padded with 'x'), with an
// idempotent producer. It is bench/suite's writeInput, copied because a
// main package cannot be imported: the two must write the same input, so
// that goka and the engine read the same records in the same partitions
// (franz-go's default partitioner hashes the key).
func writeInput(ctx context.Context, brokers []string, topic string, records, keys, valueSize int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		return err
	}
	defer cl.Close()
	var mu sync.Mutex
	var perr error
	pad := make([]byte, valueSize)
	for i := range pad {
		pad[i] = 'x'
	}
	for seq := 0; seq < records; seq++ {
		v := strconv.AppendInt(nil, int64(seq), 10)
		v = append(v, pad[min(len(v), valueSize):]...)
		cl.Produce(ctx, &kgo.Record{Key: []byte("k" + strconv.Itoa(seq%keys)), Value: v}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return perr
}
