// Package devbroker starts an embedded Kafka-protocol broker (franz-go's
// kfake) on loopback ports, for development, examples and tests: a real
// pipeline with no setup. With a data directory its state (topics, records,
// transactions, group offsets) survives a restart of the process that runs
// it, so a job can be killed and restarted against the same broker.
//
// It is not a production broker: one process, no replication, and records
// written since the last segment roll may be lost if the broker process
// itself crashes (unless SyncWrites is set).
package devbroker

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Config describes the broker. The zero value is a single in-memory broker
// on a free port.
type Config struct {
	// DataDir persists the broker's state so that it survives restarts.
	// Empty keeps everything in memory.
	DataDir string
	// Port of the first broker on 127.0.0.1; further brokers take the next
	// ports. 0 picks free ports.
	Port int
	// Brokers in the cluster. Default 1; tests use several to move partition
	// leaders and coordinators.
	Brokers int
	// Topics to create at the first start (name to partition count).
	// Topics restored from DataDir are kept as they are.
	Topics map[string]int32
	// AutoCreateTopics creates a topic when a client asks for metadata of a
	// topic that does not exist, as Kafka does by default.
	AutoCreateTopics bool
	// DefaultPartitions for automatically created topics. Default 4.
	DefaultPartitions int
	// SyncWrites fsyncs every write: slower, but the broker's own crash loses
	// nothing. Killing clients never needs it.
	SyncWrites bool
	// KafkaVersion, such as "3.9", makes the broker speak only the protocol
	// versions of that Kafka release; "3.9" predates KIP-890, whose
	// transactions bump the producer epoch at every commit. Default: the
	// newest.
	KafkaVersion string
	// BrokerConfigs are broker-level settings such as
	// transaction.max.timeout.ms or transactional.id.expiration.ms.
	BrokerConfigs map[string]string
	// Log receives the broker's log at info level; nil discards it.
	Log io.Writer
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: must be in 0..65535", c.Port))
	}
	if c.Brokers < 0 {
		errs = append(errs, fmt.Errorf("brokers %d: must not be negative", c.Brokers))
	}
	if c.DefaultPartitions < 0 {
		errs = append(errs, fmt.Errorf("default partitions %d: must not be negative", c.DefaultPartitions))
	}
	if c.KafkaVersion != "" && kversion.FromString(c.KafkaVersion) == nil {
		errs = append(errs, fmt.Errorf("kafka version %q: unknown (known: %v)", c.KafkaVersion, kversion.VersionStrings()))
	}
	for t, n := range c.Topics {
		if t == "" || n < 1 {
			errs = append(errs, fmt.Errorf("topic %q with %d partitions: needs a name and at least one partition", t, n))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("devbroker: invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// Broker is a running embedded cluster.
type Broker struct {
	c *kfake.Cluster
}

// Start starts the cluster and returns once it accepts connections.
func Start(cfg Config) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Brokers == 0 {
		cfg.Brokers = 1
	}
	if cfg.DefaultPartitions == 0 {
		cfg.DefaultPartitions = 4
	}
	opts := []kfake.Opt{kfake.DefaultNumPartitions(cfg.DefaultPartitions)}
	if cfg.Port > 0 {
		ports := make([]int, cfg.Brokers)
		for i := range ports {
			ports[i] = cfg.Port + i
		}
		opts = append(opts, kfake.Ports(ports...))
	} else {
		opts = append(opts, kfake.NumBrokers(cfg.Brokers))
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.AutoCreateTopics {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	for t, n := range cfg.Topics {
		opts = append(opts, kfake.SeedTopics(n, t))
	}
	if cfg.KafkaVersion != "" {
		opts = append(opts, kfake.MaxVersions(kversion.FromString(cfg.KafkaVersion)))
	}
	if len(cfg.BrokerConfigs) > 0 {
		opts = append(opts, kfake.BrokerConfigs(cfg.BrokerConfigs))
	}
	if cfg.Log != nil {
		opts = append(opts, kfake.WithLogger(kfake.BasicLogger(cfg.Log, kfake.LogLevelInfo)))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		where := "in memory"
		if cfg.DataDir != "" {
			where = "with data directory " + cfg.DataDir
		}
		if cfg.Port > 0 {
			where += " on port " + strconv.Itoa(cfg.Port)
		}
		return nil, fmt.Errorf("devbroker: start %s: %w", where, err)
	}
	askNoTelemetry(c)
	return &Broker{c: c}, nil
}

// askNoTelemetry makes the broker answer GetTelemetrySubscriptions as a
// Kafka broker with no client-metrics subscription configured (Kafka's
// default) does: no metrics requested, ask again in five minutes (KIP-714).
// kfake subscribes every client to every metric, and a subscribed franz-go
// client compresses each push, the last at its close, with 4 MB lz4
// buffers: 75 MB of allocation in one run of bench/suite's keyed count,
// which the raw baseline, with fewer clients, paid less of.
func askNoTelemetry(c *kfake.Cluster) {
	c.ControlKey(int16(kmsg.GetTelemetrySubscriptions), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.GetTelemetrySubscriptionsRequest)
		resp := req.ResponseKind().(*kmsg.GetTelemetrySubscriptionsResponse)
		resp.ClientInstanceID = req.ClientInstanceID
		if resp.ClientInstanceID == [16]byte{} {
			rand.Read(resp.ClientInstanceID[:])
		}
		resp.PushIntervalMillis = 5 * 60 * 1000
		return resp, nil, true
	})
}

// Addrs returns the host:port of every broker, for a client's seed list.
func (b *Broker) Addrs() []string { return b.c.ListenAddrs() }

// Cluster returns the underlying kfake cluster, for tests that inject
// faults (Cluster.Fault, ControlKey) or move leaders.
func (b *Broker) Cluster() *kfake.Cluster { return b.c }

// Close stops the broker; with a data directory it saves its state first.
func (b *Broker) Close() { b.c.Close() }
