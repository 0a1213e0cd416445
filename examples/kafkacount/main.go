// Command kafkacount is a self-verifying exactly-once Kafka job: it reads
// keyed records from one topic, counts them per key in keyed state and
// echoes every record with its key's count to another topic inside Kafka
// transactions committed with the checkpoints. Kill it (even with SIGKILL)
// and start it again as often as you like: a read_committed reader of the
// output sees every input exactly once with its exact count.
//
// With no -brokers it starts an embedded broker (its data under
// onceflow-data/kafka), fills the input topic if it is empty, runs until the
// input is consumed and verifies the output against the input:
//
//	go run ./examples/kafkacount
//	go run ./examples/kafkacount -brokers 127.0.0.1:9092 -bounded=false
//
// ONCEFLOW_TEST_KILL_AT=before-notify:3 makes it SIGKILL itself at the third
// completed checkpoint, before its sink commits (see internal/testjob/kafkajob).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "github.com/onceflow/onceflow/checkpoint/fsstore" // file:// checkpoint stores
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// checkpoint stores
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kafkacount:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(engine.ExitConfig)
		}
		os.Exit(engine.ExitCode(err))
	}
}

type usageError struct{ error }

func run() error {
	brokers := flag.String("brokers", os.Getenv("ONCEFLOW_KAFKA_BROKERS"), "Kafka seed brokers, comma-separated; empty starts an embedded broker (env ONCEFLOW_KAFKA_BROKERS)")
	data := flag.String("data", "onceflow-data", "directory of the embedded broker's data (as kafka/) and of the default state directory")
	in := flag.String("in", "kafkacount-in", "input topic")
	out := flag.String("out", "kafkacount-out", "output topic")
	txnPrefix := flag.String("txn-prefix", "", "transactional id prefix, unique per job on the cluster (default kafkacount-<out>)")
	bounded := flag.Bool("bounded", true, "stop at the end of the input present at the first start")
	rate := flag.Float64("rate", 0, "records per second per source subtask, 0 = unlimited")
	records := flag.Uint64("records", 200000, "input records to generate when the input topic does not exist")
	keys := flag.Int("keys", 1000, "distinct keys of generated input, besides the hot key")
	hotEvery := flag.Uint64("hot-every", 10, "every n-th generated record has the hot key")
	verify := flag.Bool("verify", true, "when the job finishes, check the committed output against the input")
	backend := flag.String("state", "pebble", "keyed state backend: memory | pebble")
	stateDir := flag.String("state-dir", "", "local directory of the pebble state backend (default <data>/kafkacount-state)")
	if err := engine.ParseFlags(); err != nil {
		return usageError{err}
	}
	factory, err := stateBackend(*backend, *stateDir, *data)
	if err != nil {
		return usageError{err}
	}
	kill, err := kafkajob.KillHook()
	if err != nil {
		return usageError{err}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	seeds := strings.Split(*brokers, ",")
	if *brokers == "" {
		b, err := devbroker.Start(devbroker.Config{DataDir: filepath.Join(*data, "kafka")})
		if err != nil {
			return err
		}
		defer b.Close()
		seeds = b.Addrs()
		fmt.Printf("kafkacount: embedded Kafka broker at %s (data in %s)\n", seeds[0], filepath.Join(*data, "kafka"))
	}
	if err := kafka.CreateTopic(ctx, seeds, *in, 4); err == nil {
		fmt.Printf("kafkacount: generating %d records into %s\n", *records, *in)
		if err := kafkajob.Generate(ctx, seeds, *in, *records, *keys, *hotEvery); err != nil {
			return err
		}
	} else if !errors.Is(err, kafka.ErrTopicExists) {
		return err
	}
	if err := kafka.CreateTopic(ctx, seeds, *out, 4); err != nil && !errors.Is(err, kafka.ErrTopicExists) {
		return err
	}

	job := kafkajob.Build(kafkajob.Options{Brokers: seeds, Input: *in, Output: *out, TxnPrefix: *txnPrefix,
		Bounded: *bounded, RatePerSecond: *rate, Guarantee: kafka.ExactlyOnce})
	start := time.Now()
	// RunMain serves the runner's control socket when there is one.
	err = engine.RunMain(job, func(c *engine.Config) { c.StateBackend, c.Faults = factory, kill })
	if errors.Is(err, engine.ErrStopped) || (err == nil && ctx.Err() != nil) {
		return nil // stopped or interrupted: the next start resumes from the checkpoint
	}
	if err != nil {
		return err
	}
	if !*verify || !*bounded {
		return nil
	}
	vctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rep, err := kafkajob.Verify(vctx, seeds, *in, *out, false)
	if err != nil {
		return fmt.Errorf("verification FAILED: %w", err)
	}
	fmt.Printf("kafkacount: verified in %v: %v: exactly once\n", time.Since(start).Round(time.Millisecond), rep)
	return nil
}

func stateBackend(name, dir, data string) (state.Factory, error) {
	switch name {
	case "memory":
		return state.Memory, nil
	case "pebble":
		if dir == "" {
			dir = filepath.Join(data, "kafkacount-state")
		}
		o := pebblestate.Options{Dir: dir}
		if err := o.Validate(); err != nil {
			return nil, err
		}
		return pebblestate.New(o), nil
	}
	return nil, fmt.Errorf("-state %q: want memory or pebble", name)
}
