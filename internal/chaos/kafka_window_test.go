package chaos

import (
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/internal/testjob/kafkajob"
)

// TestKafkaKillBeforeCommit kills the job with SIGKILL right after a
// checkpoint's manifest is durable and before its sinks commit. The
// checkpoint's transactions are then prepared and open on the broker: their
// records are invisible to read_committed readers. The restarted job must
// commit exactly those (no loss) and write nothing twice.
func TestKafkaKillBeforeCommit(t *testing.T) {
	dir := t.TempDir()
	brokers := testenv.Kfake(t, devbroker.Config{DataDir: filepath.Join(dir, "kafka")}).Addrs()
	in := testenv.KafkaTopic(t, brokers, "in", 4)
	out := testenv.KafkaTopic(t, brokers, "out", 4)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := produceInput(ctx, brokers, in, 40000, 500, 10, 0, nil); err != nil {
		t.Fatal(err)
	}
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/kafkacount")
	args := []string{"-brokers", strings.Join(brokers, ","), "-in", in, "-out", out, "-txn-prefix", "window",
		"-bounded", "-verify=false", "-state", "memory", "-rate", "10000", "-parallelism", "2",
		"-checkpoint-store", "file://" + filepath.Join(dir, "ckpt"), "-checkpoint-interval", "100ms", "-restart", "none"}

	p := proctest.Start(t, bin, args, kafkajob.KillEnv+"=before-notify:5")
	if !p.Wait(time.Minute) || p.ExitCode() != -1 || !strings.Contains(p.Output(), "SIGKILL at before-notify") {
		p.Kill()
		t.Fatalf("the job did not kill itself before the commit (status %d):\n%s", p.ExitCode(), p.Output())
	}
	offs, err := kafka.TopicOffsets(ctx, brokers, out)
	if err != nil {
		t.Fatal(err)
	}
	open := 0
	for _, o := range offs {
		if o.LastStable < o.HighWatermark {
			open++
		}
	}
	if open == 0 {
		t.Fatalf("no prepared transaction is open after the kill: %+v", offs)
	}
	before, err := kafkajob.Committed(ctx, brokers, out)
	if err != nil {
		t.Fatal(err)
	}

	p = proctest.Start(t, bin, args)
	if !p.Wait(time.Minute) {
		p.Kill()
		t.Fatalf("the restarted job did not finish:\n%s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("restarted job: %v\n%s", err, p.Output())
	}
	recovered := 0
	for _, m := range regexp.MustCompile(`kafka sink recovered .* committed=(\d+)`).FindAllStringSubmatch(p.Output(), -1) {
		n, _ := strconv.Atoi(m[1])
		recovered += n
	}
	if recovered == 0 {
		t.Fatalf("the restart committed no restored transaction:\n%s", p.Output())
	}
	rep, err := kafkajob.Verify(ctx, brokers, in, out, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed with %d output partitions holding prepared transactions and %d committed outputs; the restart committed %d restored transactions; exact output: %v",
		open, len(before), recovered, rep)
}
