package e2e

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/runner"
)

// TestRunnerCrashRecovery runs the Kafka word count and its load generator
// under `onceflow serve`, through the CLI. It SIGKILLs the job processes
// several times and the runner itself twice, at random moments, restarting
// the runner each time: the jobs must resume by themselves (and die with the
// runner: no orphan), and the word count's committed output, read with
// read_committed, must be exact.
func TestRunnerCrashRecovery(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.KafkaTopic(t, brokers, "lines", 4)
	out := testenv.KafkaTopic(t, brokers, "counts", 4)
	onceflow := proctest.Build(t, mod+"/cmd/onceflow")
	wordcount := proctest.Build(t, mod+"/examples/wordcount")
	loadgen := proctest.Build(t, mod+"/examples/wordcount/loadgen")
	data := filepath.Join(t.TempDir(), "runner")
	rn := startRunner(t, onceflow, data, "127.0.0.1:0")
	addr := strings.TrimPrefix(rn.url, "http://")
	url := rn.url
	const lines = 30000 // at 1500/s: 20s of input, during which everything is killed
	seeds := strings.Join(brokers, ",")

	lg := submitted(t, mustCLI(t, onceflow, url, "submit", "--json", "--name", "loadgen",
		"--config", "checkpoint-interval=200ms", loadgen, "--",
		"-brokers", seeds, "-topic", in, "-lines", fmt.Sprint(lines), "-rate", "1500"))
	wc := submitted(t, mustCLI(t, onceflow, url, "submit", "--json", "--name", "wordcount", "--parallelism", "2",
		"--config", "checkpoint-interval=200ms", wordcount, "--",
		"-brokers", seeds, "-in", in, "-out", out))
	running := func(v *runner.JobView) bool { return v.State == runner.StateRunning }
	waitJob(t, onceflow, url, lg, time.Minute, "running", running)
	waitJob(t, onceflow, url, wc, time.Minute, "running", running)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	events := []string{"job", "job", "job", "job", "loadgen", "runner", "runner"}
	rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
	jobKills := 0
	for _, ev := range events {
		time.Sleep(time.Duration(300+rng.IntN(1700)) * time.Millisecond)
		switch ev {
		case "job", "loadgen":
			id := wc
			if ev == "loadgen" {
				id = lg
			}
			v := waitJob(t, onceflow, url, id, time.Minute, "running before a kill", running)
			if v.State == runner.StateFinished {
				continue
			}
			if err := syscall.Kill(v.PID, syscall.SIGKILL); err != nil {
				t.Fatalf("kill job %s pid %d: %v", id, v.PID, err)
			}
			jobKills++
			t.Logf("SIGKILLed job %s (pid %d)", id, v.PID)
			waitJob(t, onceflow, url, id, time.Minute, "restarted after SIGKILL", func(n *runner.JobView) bool {
				return n.State == runner.StateRunning && n.PID != v.PID || n.State == runner.StateFinished
			})
		case "runner":
			pids := map[string]int{}
			for _, id := range []string{lg, wc} {
				if v := status(t, onceflow, url, id); v.PID > 0 {
					pids[id] = v.PID
				}
			}
			rn.p.Kill()
			t.Logf("SIGKILLed the runner; job pids %v", pids)
			for id, pid := range pids {
				waitDead(t, pid, "the runner was killed (job "+id+" orphaned)")
			}
			rn = startRunner(t, onceflow, data, addr)
			for id, old := range pids {
				waitJob(t, onceflow, url, id, time.Minute, "resumed after the runner restart", func(n *runner.JobView) bool {
					return n.State == runner.StateRunning && n.PID != old || n.State == runner.StateFinished
				})
			}
		}
	}

	// The load generator finishes; the word count catches up and its
	// committed output is exact.
	waitJob(t, onceflow, url, lg, 3*time.Minute, "finished", func(v *runner.JobView) bool {
		if v.State == runner.StateFailed {
			t.Fatalf("loadgen failed: %s\n%s", v.Reason, v.OutputTail)
		}
		return v.State == runner.StateFinished
	})
	p := proctest.Start(t, wordcount, []string{"-verify", "-exact", "-verify-wait", "2m", "-brokers", seeds, "-in", in, "-out", out})
	if !p.Wait(4 * time.Minute) {
		p.Kill()
		t.Fatalf("verification did not finish:\n%s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("after %d job kills and 2 runner kills: %v\n%s", jobKills, err, p.Output())
	}
	t.Log(strings.TrimSpace(p.Output()))
	v := status(t, onceflow, url, wc)
	if v.State != runner.StateRunning || v.ProcessRestarts < 4 {
		t.Errorf("word count after the kills: state %s, %d process restarts (want RUNNING, >= 4)", v.State, v.ProcessRestarts)
	}
	t.Logf("word count: %d process restarts, %d checkpoints since the last runner start", v.ProcessRestarts, v.CheckpointsCompleted)

	mustCLI(t, onceflow, url, "cancel", wc)
	waitJob(t, onceflow, url, wc, time.Minute, "cancelled", func(v *runner.JobView) bool { return v.State == runner.StateCancelled })
	if err := rn.p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !rn.p.Wait(30 * time.Second) {
		t.Fatalf("runner did not stop on SIGTERM:\n%s", rn.p.Output())
	}
	if err := rn.p.Err(); err != nil {
		t.Fatalf("runner exit after SIGTERM: %v\n%s", err, rn.p.Output())
	}
}
