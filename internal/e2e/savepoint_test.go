package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/kafka"
	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/runner"
)

// TestSavepointRoundTrip stops the Kafka word count with a savepoint through
// the CLI, resubmits it from that savepoint as a new job at another
// parallelism, stops that one too and restores it in place at a third
// parallelism, while the load generator keeps writing: the committed output,
// read with read_committed, is exact.
func TestSavepointRoundTrip(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "lines", 4)
	out := testenv.KafkaTopic(t, brokers, "counts", 4)
	seeds := strings.Join(brokers, ",")
	onceflow := proctest.Build(t, mod+"/cmd/onceflow")
	wordcount := proctest.Build(t, mod+"/examples/wordcount")
	loadgen := proctest.Build(t, mod+"/examples/wordcount/loadgen")
	url := startRunner(t, onceflow, filepath.Join(t.TempDir(), "runner"), "127.0.0.1:0").url

	const lines = 15000
	lg := submitted(t, mustCLI(t, onceflow, url, "submit", "--json", "--name", "loadgen", "--config", "checkpoint-interval=200ms",
		loadgen, "--", "-brokers", seeds, "-topic", in, "-lines", fmt.Sprint(lines), "-rate", "1000"))
	submit := func(extra ...string) string {
		args := append([]string{"submit", "--json", "--name", "wordcount", "--config", "checkpoint-interval=100ms"}, extra...)
		return submitted(t, mustCLI(t, onceflow, url, append(args, wordcount, "--", "-brokers", seeds, "-in", in, "-out", out)...))
	}
	checkpointed := func(v *runner.JobView) bool { return v.State == runner.StateRunning && v.CheckpointsCompleted > 0 }
	stop := func(id string) string {
		waitJob(t, onceflow, url, id, time.Minute, "running with a checkpoint", checkpointed)
		var sp runner.SavepointResult
		cliJSON(t, onceflow, url, &sp, "stop", id)
		if sp.Kind != "savepoint" || !strings.HasPrefix(sp.Path, id+"/wordcount/savepoints/") {
			t.Fatalf("stop of %s: %+v", id, sp)
		}
		v := waitJob(t, onceflow, url, id, time.Minute, "stopped", func(v *runner.JobView) bool { return !runner.Active(v.State) })
		if v.State != runner.StateStopped || v.LastSavepoint != sp.Path {
			t.Fatalf("job %s after stop: %s (%s), last savepoint %q", id, v.State, v.Reason, v.LastSavepoint)
		}
		t.Logf("job %s stopped with savepoint %s; %d committed outputs", id, sp.Path, countRecords(t, brokers, out))
		return sp.Path
	}

	j1 := submit("--parallelism", "2")
	waitJob(t, onceflow, url, j1, time.Minute, "running with a checkpoint", checkpointed)
	connectorMetrics(t, url, j1)
	var sp runner.SavepointResult
	cliJSON(t, onceflow, url, &sp, "savepoint", j1) // a savepoint that does not stop the job
	if sp.Path == "" {
		t.Fatalf("savepoint: %+v", sp)
	}
	sp1 := stop(j1)
	var pts []runner.RestorePoint
	cliJSON(t, onceflow, url, &pts, "checkpoints", j1)
	if !hasPoint(pts, sp1) || !hasPoint(pts, sp.Path) {
		t.Fatalf("checkpoints of %s lack its savepoints %s, %s: %+v", j1, sp.Path, sp1, pts)
	}

	// A new job from the stop savepoint, at parallelism 3.
	j2 := submit("--parallelism", "3", "--from", sp1)
	sp2 := stop(j2)

	// The same job restored in place from its savepoint, at parallelism 1.
	mustCLI(t, onceflow, url, "restore", j2, sp2, "--parallelism", "1")
	v := waitJob(t, onceflow, url, j2, time.Minute, "running again", checkpointed)
	if v.Parallelism != 1 {
		t.Fatalf("restored job: parallelism %d", v.Parallelism)
	}
	waitJob(t, onceflow, url, lg, 2*time.Minute, "finished", func(v *runner.JobView) bool { return v.State == runner.StateFinished })
	p := proctest.Start(t, wordcount, []string{"-verify", "-exact", "-verify-wait", "2m", "-brokers", seeds, "-in", in, "-out", out})
	if !p.Wait(4 * time.Minute) {
		p.Kill()
		t.Fatalf("verification did not finish:\n%s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("after stop, resubmit, stop, restore at parallelism 2, 3, 1: %v\n%s", err, p.Output())
	}
	t.Log(strings.TrimSpace(p.Output()))

	// Savepoints are deleted by hand; the listing then lacks them.
	mustCLI(t, onceflow, url, "delete-savepoint", sp.Path)
	cliJSON(t, onceflow, url, &pts, "savepoints")
	if hasPoint(pts, sp.Path) || !hasPoint(pts, sp1) || !hasPoint(pts, sp2) {
		t.Fatalf("savepoints after deleting %s: %+v", sp.Path, pts)
	}
	if _, err := cli(onceflow, url, "delete-savepoint", sp.Path); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("deleting a deleted savepoint: %v", err)
	}
	mustCLI(t, onceflow, url, "cancel", j2)

	// Deleting the ended jobs: refused while a job has savepoints; the
	// shared uploaded binary goes with the last job that runs it.
	bin := status(t, onceflow, url, j2).Binary
	waitJob(t, onceflow, url, j2, time.Minute, "cancelled", func(v *runner.JobView) bool { return v.State == runner.StateCancelled })
	if _, err := cli(onceflow, url, "delete", j1); err == nil || !strings.Contains(err.Error(), "HTTP 409") || !strings.Contains(err.Error(), sp1) {
		t.Fatalf("deleting %s, which has savepoint %s: %v", j1, sp1, err)
	}
	for _, p := range []string{sp1, sp2} {
		mustCLI(t, onceflow, url, "delete-savepoint", p)
	}
	mustCLI(t, onceflow, url, "delete", j1)
	if _, err := cli(onceflow, url, "status", j1); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("status of deleted job %s: %v", j1, err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("binary of %s, which still has job %s, was removed: %v", j1, j2, err)
	}
	cliJSON(t, onceflow, url, &pts, "savepoints")
	for _, p := range pts {
		if p.Job == j2 {
			mustCLI(t, onceflow, url, "delete-savepoint", p.Path)
		}
	}
	mustCLI(t, onceflow, url, "delete", j2)
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Fatalf("uploaded binary %s after deleting its last job: %v", bin, err)
	}
}

// connectorMetrics checks that /metrics has the Kafka connectors' gauges of
// the word count job id, and an open transaction between checkpoints.
func connectorMetrics(t *testing.T, url, id string) {
	t.Helper()
	lag := regexp.MustCompile(`(?m)^onceflow_source_lag_records\{job="` + id + `",operator="lines"\} (\S+)$`)
	age := regexp.MustCompile(`(?m)^onceflow_sink_open_transaction_age_seconds\{job="` + id + `",operator="out"\} (\S+)$`)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		text := string(body)
		for _, family := range []string{"onceflow_source_lag_records", "onceflow_sink_open_transaction_age_seconds"} {
			if !strings.Contains(text, "# TYPE "+family+" gauge\n") {
				t.Fatalf("/metrics lacks the %s family:\n%s", family, text)
			}
		}
		l, a := lag.FindStringSubmatch(text), age.FindStringSubmatch(text)
		if l == nil || a == nil {
			t.Fatalf("/metrics lacks job %s's source lag or open transaction age:\n%s", id, text)
		}
		if v, err := strconv.ParseFloat(l[1], 64); err != nil || v < 0 {
			t.Fatalf("source lag %q", l[1])
		}
		if v, err := strconv.ParseFloat(a[1], 64); err == nil && v > 0 && v < 60 {
			return // a transaction open between checkpoints
		}
		if time.Now().After(deadline) {
			t.Fatalf("no open transaction age in (0, 60s) seen in a minute; last %s", a[0])
		}
		time.Sleep(20 * time.Millisecond) // a gauge has no change event
	}
}

func hasPoint(pts []runner.RestorePoint, path string) bool {
	for _, p := range pts {
		if p.Path == path {
			return true
		}
	}
	return false
}

// countRecords counts the committed records of topic.
func countRecords(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	if err := kafka.ReadTopic(ctx, brokers, topic, true, func(kafka.Message[[]byte, []byte]) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
