package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

type devFlags struct {
	serveFlags
	kafka, kafkaData string
}

func (f *devFlags) register(fs *flag.FlagSet) {
	f.serveFlags.register(fs)
	fs.StringVar(&f.kafka, "kafka", "127.0.0.1:9092", "listen address of the embedded Kafka-protocol broker (loopback)")
	fs.StringVar(&f.kafkaData, "kafka-data", filepath.Join("onceflow-data", "kafka"), "data directory of the broker: topics survive restarts")
}

// devEnv is an embedded broker and a runner in this process.
type devEnv struct {
	broker *devbroker.Broker
	rt     *runningRunner
	f      devFlags
}

func startDev(f devFlags) (*devEnv, error) {
	host, portStr, err := net.SplitHostPort(f.kafka)
	port, perr := strconv.Atoi(portStr)
	if err != nil || perr != nil || (host != "127.0.0.1" && host != "localhost") {
		return nil, fmt.Errorf("%w: --kafka %q: want 127.0.0.1:PORT (the embedded broker listens on loopback only)", errUsage, f.kafka)
	}
	if err := os.MkdirAll(f.kafkaData, 0o700); err != nil {
		return nil, fmt.Errorf("kafka data directory: %w", err)
	}
	// SyncWrites: the broker lives in this process, and a kill -9 of
	// `onceflow dev` must not lose records that transactions committed.
	b, err := devbroker.Start(devbroker.Config{
		DataDir: f.kafkaData, Port: port, SyncWrites: true, AutoCreateTopics: true,
		Topics: map[string]int32{"lines": 4, "counts": 4},
	})
	if err != nil {
		return nil, fmt.Errorf("start the embedded Kafka broker on %s (is a Kafka or another onceflow dev already running?): %w", f.kafka, err)
	}
	// Jobs started by the runner inherit it: the examples read it.
	os.Setenv("ONCEFLOW_KAFKA_BROKERS", b.Addrs()[0])
	rt, err := startRunner(f.serveFlags)
	if err != nil {
		b.Close()
		return nil, err
	}
	return &devEnv{broker: b, rt: rt, f: f}, nil
}

func (d *devEnv) printBanner() {
	kdata, _ := filepath.Abs(d.f.kafkaData)
	fmt.Printf(`onceflow dev is running:
  Kafka broker         %s   (data %s; topics "lines" and "counts", others created on use)
  runner API and page  %s   (metrics at %s/metrics)
  checkpoints          file://%s/checkpoints/<job id>
Try, from another terminal:
  go build -o /tmp/wordcount ./examples/wordcount
  go run ./cmd/onceflow submit --parallelism 2 /tmp/wordcount -- -in lines -out counts
  go run ./cmd/onceflow jobs
Ctrl-C stops everything; running jobs resume at the next start.
`, d.broker.Addrs()[0], kdata, d.rt.url, d.rt.url, d.rt.data)
}

// close stops the runner (and its jobs) first, then the broker they use.
func (d *devEnv) close(serveErr error) error {
	err := d.rt.close(serveErr)
	d.broker.Close()
	return err
}

func runDev(args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var f devFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDev(f)
	if err != nil {
		return err
	}
	d.printBanner()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-d.rt.served:
	}
	return d.close(serveErr)
}
