// Command loadgen writes the word-count example's input: line number seq is
// Line(seq), written to a Kafka topic exactly once (it is itself an
// Onceflow job: datagen -> Kafka transactions), so that however often it is
// killed and restarted the input topic holds lines 0..n-1 once each.
//
//	loadgen -brokers 127.0.0.1:9092 -topic lines -rate 2000 [-lines 100000]
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	_ "github.com/onceflow/onceflow/checkpoint/fsstore" // file:// checkpoint stores
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// checkpoint stores
	"github.com/onceflow/onceflow/connectors/datagen"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
)

func main() {
	brokers := flag.String("brokers", envOr("ONCEFLOW_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma-separated (env ONCEFLOW_KAFKA_BROKERS)")
	topic := flag.String("topic", "lines", "topic to write")
	lines := flag.Uint64("lines", 0, "lines to write, 0 = unbounded")
	rate := flag.Float64("rate", 2000, "lines per second per subtask, 0 = unlimited")
	if err := engine.ParseFlags(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	job := engine.NewJob("loadgen", engine.WithDefaultParallelism(1))
	src := datagen.Source(job, "lines", datagen.Config[string]{Generate: Line, Count: *lines, RatePerSecond: *rate, Splits: 4})
	kafka.Sink(src, "out", kafka.SinkConfig[string]{
		Brokers: strings.Split(*brokers, ","), Topic: *topic,
		Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: "loadgen-" + *topic,
		Value: kafka.String{},
	})
	engine.Main(job)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
