package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

// Kafka returns the seed brokers of the test Kafka cluster:
//
//	ONCEFLOW_TEST_KAFKA_BROKERS  host:port[,host:port...] of an existing cluster
//
// and, when it is unset, of an embedded broker (kfake, with a data directory
// under t.TempDir()) started for this test and closed at its end. Tests must
// use their own topics (KafkaTopic) so that they can share a real cluster.
func Kafka(t testing.TB) []string {
	t.Helper()
	if v := os.Getenv("ONCEFLOW_TEST_KAFKA_BROKERS"); v != "" {
		return strings.Split(v, ",")
	}
	return Kfake(t, devbroker.Config{}).Addrs()
}

// Kfake starts an embedded broker for this test whatever the environment:
// for tests that inject broker faults, which a real cluster cannot do. Unless
// cfg sets one, its data directory is under t.TempDir().
func Kfake(t testing.TB, cfg devbroker.Config) *devbroker.Broker {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(b.Close)
	return b
}

// KafkaTopic creates a topic with a unique name (stem, the test's name and a
// random suffix) and deletes it when the test ends.
func KafkaTopic(t testing.TB, brokers []string, stem string, partitions int32) string {
	t.Helper()
	// bucketName is lower-case [a-z0-9-] with a random suffix.
	name := stem + "-" + strings.TrimPrefix(bucketName(t.Name()), "oft-")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.CreateTopic(ctx, brokers, name, partitions); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := kafka.DeleteTopic(ctx, brokers, name); err != nil {
			t.Logf("testenv: %v", err)
		}
	})
	return name
}
