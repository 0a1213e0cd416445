// Command recoveryjob is the job bench/suite kills and restarts to measure
// recovery: Kafka -> KeyBy -> per-key count in Pebble state -> Kafka,
// exactly once, unbounded, restoring from the latest checkpoint in a local
// fsstore. Every output value is "<gen>:<count>", so the suite can tell the
// first record committed by a restarted process (-gen) from older ones.
//
//	recoveryjob -brokers host:port -in T -out T -store DIR -state-dir DIR -gen 1
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
)

type msg = kafka.Message[string, []byte]

type out struct {
	key string
	n   int64
}

func main() {
	brokers := flag.String("brokers", "", "seed brokers, comma-separated")
	in := flag.String("in", "", "input topic")
	outTopic := flag.String("out", "", "output topic")
	storeDir := flag.String("store", "", "checkpoint store directory")
	stateDir := flag.String("state-dir", "", "Pebble local directory")
	interval := flag.Duration("interval", time.Second, "checkpoint interval")
	gen := flag.String("gen", "1", "generation tag written in every output value")
	par := flag.Int("parallelism", 2, "parallelism")
	flag.Parse()
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := run(strings.Split(*brokers, ","), *in, *outTopic, *storeDir, *stateDir, *interval, *gen, *par); err != nil {
		fmt.Fprintln(os.Stderr, "recoveryjob:", err)
		os.Exit(1)
	}
}

func run(brokers []string, in, outTopic, storeDir, stateDir string, interval time.Duration, gen string, par int) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	job := engine.NewJob("recoveryjob", engine.WithDefaultParallelism(par))
	src := kafka.Source(job, "in", kafka.SourceConfig[string, []byte]{
		Brokers: brokers, Topics: []string{in}, Key: kafka.String{}, Value: kafka.Bytes{},
	})
	byKey := engine.KeyBy(src, func(m msg) string { return m.Key }, state.String)
	counts := engine.TransformKeyed(byKey, "count", func() engine.KeyedOperator[string, msg, out] { return &counter{} })
	prefix := []byte(gen + ":")
	kafka.Sink(counts, "out", kafka.SinkConfig[out]{
		Brokers: brokers, Topic: outTopic, Guarantee: kafka.ExactlyOnce, TransactionalIDPrefix: "recoveryjob-" + outTopic,
		Key: kafka.SerializerFunc[out](func(_ string, o out) ([]byte, error) { return []byte(o.key), nil }),
		Value: kafka.SerializerFunc[out](func(_ string, o out) ([]byte, error) {
			return strconv.AppendInt(append([]byte(nil), prefix...), o.n, 10), nil
		}),
	})
	store, err := fsstore.Open(storeDir)
	if err != nil {
		return err
	}
	err = engine.Run(ctx, job, engine.Config{Store: store, CheckpointInterval: interval, Restart: engine.NoRestart(),
		StateBackend: pebblestate.New(pebblestate.Options{Dir: stateDir})})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

type counter struct{ n *state.Value[int64] }

func (c *counter) Open(ctx *engine.Context) (err error) {
	c.n, err = state.NewValue(ctx.State(), "n", state.Int64)
	return err
}

func (c *counter) Process(key string, _ msg, o *engine.Output[out]) error {
	n, _, err := c.n.Get()
	if err != nil {
		return err
	}
	n++
	if err := c.n.Set(n); err != nil {
		return err
	}
	o.Emit(out{key, n})
	return nil
}
