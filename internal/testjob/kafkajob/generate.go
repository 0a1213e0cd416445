package kafkajob

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/onceflow/onceflow/checkpoint/memstore"
	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
)

// Key returns the key of input record seq: every hotEvery-th record has the
// hot key "hot", the others go round-robin over keys keys.
func Key(seq uint64, keys int, hotEvery uint64) string {
	if hotEvery == 0 {
		return "k" + strconv.FormatUint(seq%uint64(keys), 10)
	}
	if seq%hotEvery == 0 {
		return "hot"
	}
	cold := seq - seq/hotEvery - 1 // index of seq among the records that are not hot
	return "k" + strconv.FormatUint(cold%uint64(keys), 10)
}

// Generate writes records input records to topic with a bounded datagen job
// (partitioned by key, as the count requires), exactly once.
func Generate(ctx context.Context, brokers []string, topic string, records uint64, keys int, hotEvery uint64) error {
	job := engine.NewJob("kafkacount-input")
	seqs := datagen.Source(job, "seq", datagen.Config[uint64]{Generate: func(seq uint64) uint64 { return seq }, Count: records, Splits: 4})
	kafka.Sink(seqs, "input", kafka.SinkConfig[uint64]{
		Brokers: brokers, Topic: topic, Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: "kafkacount-input-" + topic,
		Key: kafka.SerializerFunc[uint64](func(_ string, seq uint64) ([]byte, error) {
			return []byte(Key(seq, keys, hotEvery)), nil
		}),
		Value: kafka.SerializerFunc[uint64](func(_ string, seq uint64) ([]byte, error) { return strconv.AppendUint(nil, seq, 10), nil }),
	})
	if err := engine.Run(ctx, job, engine.Config{Store: memstore.New(), CheckpointInterval: 200 * time.Millisecond}); err != nil {
		return fmt.Errorf("generate input into %s: %w", topic, err)
	}
	return nil
}
