// Command wordcount counts words exactly once from Kafka to Kafka: it reads
// lines from a topic, splits them into words, counts each word in keyed
// state and writes "word count" for every occurrence to another topic inside
// Kafka transactions committed with the checkpoints. Kill it (even with
// SIGKILL) and restart it: a read_committed consumer of the output sees
// every count of every word exactly once.
//
//	go run ./cmd/onceflow demo        # runs it with a load generator
//	wordcount -brokers 127.0.0.1:9092 -in lines -out counts
//	wordcount -verify                 # check the output against the input
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	_ "github.com/onceflow/onceflow/checkpoint/fsstore" // file:// checkpoint stores
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// checkpoint stores
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/operators"
)

func main() {
	brokers := flag.String("brokers", envOr("ONCEFLOW_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka seed brokers, comma-separated (env ONCEFLOW_KAFKA_BROKERS)")
	in := flag.String("in", "lines", "input topic")
	out := flag.String("out", "counts", "output topic")
	txnPrefix := flag.String("txn-prefix", "", "transactional id prefix, unique per job on the cluster (default wordcount-<out>)")
	verify := flag.Bool("verify", false, "do not run the job: check the committed output against the input and exit")
	wait := flag.Duration("verify-wait", 30*time.Second, "with -verify: how long to wait for the output to catch up with the input")
	exact := flag.Bool("exact", false, "with -verify: fail unless the output catches up with the input (the input has stopped growing)")
	if err := engine.ParseFlags(); err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(2)
	}
	seeds := strings.Split(*brokers, ",")
	if *verify {
		if err := verifyOutput(seeds, *in, *out, *wait, *exact); err != nil {
			fmt.Fprintln(os.Stderr, "wordcount: verification FAILED:", err)
			os.Exit(1)
		}
		return
	}
	if *txnPrefix == "" {
		*txnPrefix = "wordcount-" + *out
	}
	engine.Main(build(seeds, *in, *out, *txnPrefix))
}

// Count is one output record: word's count after one more occurrence.
type Count struct {
	Word string
	N    int64
}

func build(brokers []string, in, out, txnPrefix string) *engine.Job {
	job := engine.NewJob("wordcount", engine.WithDefaultParallelism(2))
	lines := kafka.Source(job, "lines", kafka.SourceConfig[[]byte, string]{
		Brokers: brokers, Topics: []string{in}, Value: kafka.String{},
	})
	words := operators.FlatMap(lines, "split", func(m kafka.Message[[]byte, string], emit func(string)) error {
		for _, w := range strings.Fields(m.Value) {
			emit(w)
		}
		return nil
	})
	counts := operators.Aggregate(engine.KeyBy(words, func(w string) string { return w }, state.String),
		"count", state.Int64,
		func(n int64, _ string) int64 { return n + 1 },
		func(w string, n int64) Count { return Count{Word: w, N: n} })
	kafka.Sink(counts, "out", kafka.SinkConfig[Count]{
		Brokers: brokers, Topic: out, Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: txnPrefix,
		Key:   kafka.SerializerFunc[Count](func(_ string, c Count) ([]byte, error) { return []byte(c.Word), nil }),
		Value: kafka.SerializerFunc[Count](func(_ string, c Count) ([]byte, error) { return fmt.Appendf(nil, "%s %d", c.Word, c.N), nil }),
	})
	return job
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
