package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

// TestKafkaSIGKILL runs Kafka -> KeyBy -> count -> Kafka exactly once as a
// child process while a producer writes the input, kills it with SIGKILL at
// random moments and at named protocol points (after a manifest is durable
// and before the sink commits; between pre-commit and the ack; during the
// state upload; before the commit), while the broker (in this process, with
// a data directory, so it outlives every job process) fails and delays
// requests. After the job drains, the committed output must equal the
// oracle computed from the committed input exactly, with no transaction
// left open.
func TestKafkaSIGKILL(t *testing.T) {
	const (
		records  = 200000
		keys     = 1000
		hotEvery = 10 // one record in ten has the hot key
		kills    = 12
	)
	backend := os.Getenv("ONCEFLOW_TEST_KAFKA_STATE") // memory or pebble (default)
	if backend == "" {
		backend = "pebble"
	}
	dir := t.TempDir()
	broker := testenv.Kfake(t, devbroker.Config{DataDir: filepath.Join(dir, "kafka")})
	brokers := broker.Addrs()
	in := testenv.KafkaTopic(t, brokers, "in", 4)
	out := testenv.KafkaTopic(t, brokers, "out", 4)
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/kafkacount")
	args := func(bounded bool) []string {
		return []string{"-brokers", strings.Join(brokers, ","), "-in", in, "-out", out, "-txn-prefix", "sigkill",
			"-bounded=" + strconv.FormatBool(bounded), "-verify=false", "-state", backend, "-state-dir", filepath.Join(dir, "state"),
			"-checkpoint-store", "file://" + filepath.Join(dir, "ckpt"), "-checkpoint-interval", "100ms",
			"-restart", "fixed:-1:10ms", "-parallelism", "2"}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	killsDone := make(chan struct{})
	go func() { produced <- produceInput(ctx, brokers, in, records, keys, hotEvery, 25*time.Second, killsDone) }()
	faults := &brokerFaults{c: broker.Cluster(), out: out, fired: map[string]int{}}
	stopFaults := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() { defer close(faultsDone); faults.run(stopFaults) }()

	// The kills, random and targeted, shuffled, all while the input is
	// being written (a commit only happens when there is output).
	var schedule []engine.FaultPoint // "" is a random kill
	for i := 0; i < kills; i++ {
		schedule = append(schedule, "")
	}
	schedule = append(schedule, engine.FaultBeforeNotify, engine.FaultPreCommit, engine.FaultUpload, engine.FaultCommit,
		engine.FaultBeforeNotify, engine.FaultPreCommit, engine.FaultUpload)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	rng.Shuffle(len(schedule), func(i, j int) { schedule[i], schedule[j] = schedule[j], schedule[i] })
	random, targeted := 0, map[engine.FaultPoint]int{}
	start := time.Now()
	for _, point := range schedule {
		if point == "" {
			p := proctest.Start(t, bin, args(false))
			if p.Wait(time.Duration(200+rng.IntN(1300)) * time.Millisecond) {
				t.Fatalf("job exited before random kill %d (it must still be running): %v\n%s", random+1, p.Err(), p.Output())
			}
			if p.Kill() {
				random++
			}
			continue
		}
		spec := fmt.Sprintf("%s:%d", point, 2+rng.IntN(5))
		p := proctest.Start(t, bin, args(false), kafkajob.KillEnv+"="+spec)
		if !p.Wait(time.Minute) {
			p.Kill()
			diag(t, brokers, in, out, produced)
			t.Fatalf("targeted kill %s never fired:\n%s", spec, p.Output())
		}
		if p.ExitCode() != -1 || !strings.Contains(p.Output(), "kafkajob: SIGKILL at "+string(point)) {
			t.Fatalf("run with %s=%s exited with status %d instead of killing itself:\n%s", kafkajob.KillEnv, spec, p.ExitCode(), p.Output())
		}
		targeted[point]++
	}
	t.Logf("kills done in %v", time.Since(start).Round(time.Millisecond))
	close(killsDone)
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	close(stopFaults)
	<-faultsDone

	// The last run stops at the end of the input and finishes.
	start = time.Now()
	p := proctest.Start(t, bin, args(true))
	if !p.Wait(3 * time.Minute) {
		p.Kill()
		t.Fatalf("job did not finish after the kills:\n%s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("final run failed: %v\n%s", err, p.Output())
	}
	t.Logf("final run drained the input in %v", time.Since(start).Round(time.Millisecond))
	vctx, vcancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer vcancel()
	rep, err := kafkajob.Verify(vctx, brokers, in, out, false)
	if err != nil {
		t.Fatalf("after %d random and %v targeted SIGKILLs and broker faults %v: %v", random, targeted, faults.summary(), err)
	}
	if rep.Inputs < records || rep.Keys < keys {
		t.Fatalf("input too small: %v", rep)
	}
	for kind, n := range faults.summary() {
		if n == 0 {
			t.Errorf("broker fault %q never fired", kind)
		}
	}
	t.Logf("state %s: %d random SIGKILLs, targeted SIGKILLs %v, broker faults fired %v; exact output: %v",
		backend, random, targeted, faults.summary(), rep)
}

// produceInput writes at least records keyed records to topic over about d
// (0: at once), and goes on until until is closed if it is not nil (so that
// every kill finds records flowing), in transactions of 1000 records; every tenth transaction is
// preceded by an aborted one that read_committed readers (the job and the
// oracle) must not see.
func produceInput(ctx context.Context, brokers []string, topic string, records, keys int, hotEvery uint64, d time.Duration, until <-chan struct{}) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.TransactionalID("chaos-input-producer"))
	if err != nil {
		return err
	}
	defer cl.Close()
	const batch = 1000
	var pace <-chan time.Time // nil: as fast as possible
	if d > 0 {
		tick := time.NewTicker(d / time.Duration(records/batch))
		defer tick.Stop()
		pace = tick.C
	}
	more := func(start int) bool {
		if until == nil {
			return start < records
		}
		select {
		case <-until:
			return start < records
		default:
			return true
		}
	}
	for start := 0; more(start); start += batch {
		passes := []bool{false}
		if start/batch%10 == 9 {
			passes = []bool{true, false}
		}
		for _, abort := range passes {
			if err := cl.BeginTransaction(); err != nil {
				return err
			}
			var mu sync.Mutex
			var perr error
			for seq := start; seq < start+batch; seq++ {
				v := strconv.Itoa(seq)
				if abort {
					v = "aborted-" + v
				}
				rec := &kgo.Record{Key: []byte(kafkajob.Key(uint64(seq), keys, hotEvery)), Value: []byte(v)}
				cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil && perr == nil {
						perr = err
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				return err
			}
			if perr != nil {
				return fmt.Errorf("produce input: %w", perr)
			}
			if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(!abort)); err != nil {
				return fmt.Errorf("end input transaction: %w", err)
			}
		}
		if pace == nil {
			continue
		}
		select {
		case <-pace:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// brokerFaults makes the broker fail or delay a request of the job every
// few hundred milliseconds, in rotation.
type brokerFaults struct {
	c   *kfake.Cluster
	out string

	mu      sync.Mutex
	handles []namedHandle
	fired   map[string]int
}

type namedHandle struct {
	name string
	h    *kfake.FaultHandle
}

func (b *brokerFaults) run(stop <-chan struct{}) {
	// Transactional faults only hit the job's own ids, not the input
	// producer's.
	jobTxn := func(r kmsg.Request) bool {
		switch r := r.(type) {
		case *kmsg.EndTxnRequest:
			return strings.HasPrefix(r.TransactionalID, "sigkill-")
		case *kmsg.InitProducerIDRequest:
			return r.TransactionalID != nil && strings.HasPrefix(*r.TransactionalID, "sigkill-")
		}
		return false
	}
	kinds := []struct {
		name  string
		fault kfake.Fault
	}{
		{"produce INVALID_RECORD", kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: b.out, Err: kerr.InvalidRecord}},
		{"EndTxn COORDINATOR_NOT_AVAILABLE", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.CoordinatorNotAvailable, Count: 2, When: jobTxn}},
		{"EndTxn REQUEST_TIMED_OUT after applying", kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, When: jobTxn}},
		{"Fetch NOT_LEADER_FOR_PARTITION", kfake.Fault{Keys: []kmsg.Key{kmsg.Fetch}, Err: kerr.NotLeaderForPartition, Count: 2}},
		{"InitProducerID COORDINATOR_LOAD_IN_PROGRESS", kfake.Fault{Keys: []kmsg.Key{kmsg.InitProducerID}, Err: kerr.CoordinatorLoadInProgress, When: jobTxn}},
	}
	tick := time.NewTicker(700 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			b.mu.Lock()
			defer b.mu.Unlock()
			for _, nh := range b.handles {
				nh.h.Remove()
				b.fired[nh.name] += nh.h.Hits()
			}
			b.handles = nil
			return
		case <-tick.C:
		}
		k := kinds[i%len(kinds)]
		b.mu.Lock()
		b.handles = append(b.handles, namedHandle{k.name, b.c.Fault(k.fault)})
		b.mu.Unlock()
	}
}

func (b *brokerFaults) summary() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for k, v := range b.fired {
		out[k] = v
	}
	for _, nh := range b.handles {
		out[nh.name] += nh.h.Hits()
	}
	return out
}

// diag logs what the input producer and the topics look like, to tell a
// stuck job from a stuck input.
func diag(t *testing.T, brokers []string, in, out string, produced chan error) {
	select {
	case err := <-produced:
		t.Logf("producer returned %v", err)
	default:
		t.Logf("producer still running")
	}
	for _, topic := range []string{in, out} {
		offs, err := kafka.TopicOffsets(context.Background(), brokers, topic)
		t.Logf("%s: %+v %v", topic, offs, err)
	}
}
