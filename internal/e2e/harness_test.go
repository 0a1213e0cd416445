// Package e2e tests the onceflow runner end to end, through its CLI, with
// real job binaries as child processes.
package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/onceflow/onceflow/runner"
)

const mod = "github.com/onceflow/onceflow"

// runnerProc is an `onceflow serve` child process.
type runnerProc struct {
	p   *proc
	url string
}

// proc is a child process with its output captured. (proctest.Proc has no
// way to send SIGTERM, which the graceful stop needs.)
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(bin, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	return p
}

// Kill SIGKILLs the process and waits for it.
func (p *proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit.
func (p *proc) Wait(timeout time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (p *proc) Err() error { <-p.done; return p.err }

var listening = regexp.MustCompile(`runner listening on (http://\S+)`)

// startRunner starts `onceflow serve` and waits until it listens. addr may
// have port 0 the first time; restarts pass the address it got.
func startRunner(t *testing.T, bin, data, addr string, extra ...string) *runnerProc {
	t.Helper()
	args := append([]string{"serve", "--addr", addr, "--data", data, "--poll", "200ms"}, extra...)
	p := startProc(t, bin, args...)
	t.Cleanup(p.Kill)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := listening.FindStringSubmatch(p.Output()); m != nil {
			return &runnerProc{p: p, url: m[1]}
		}
		select {
		case <-p.done:
			t.Fatalf("onceflow serve exited: %v\n%s", p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("onceflow serve does not listen after 30s:\n%s", p.Output())
		}
		time.Sleep(20 * time.Millisecond) // no signal but its output
	}
}

// cli runs the onceflow CLI against the runner at url.
func cli(bin, url string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "ONCEFLOW_RUNNER="+url)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), errors.New(strings.TrimSpace(errb.String()) + " (" + err.Error() + ")")
	}
	return out.String(), nil
}

func mustCLI(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	out, err := cli(bin, url, args...)
	if err != nil {
		t.Fatalf("onceflow %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func cliJSON(t *testing.T, bin, url string, v any, args ...string) {
	t.Helper()
	out := mustCLI(t, bin, url, append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("onceflow %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func status(t *testing.T, bin, url, id string) *runner.JobView {
	t.Helper()
	var v runner.JobView
	cliJSON(t, bin, url, &v, "status", id)
	return &v
}

// waitJob polls the job's status through the CLI until ok, or fails after
// timeout (a runner has no push notifications).
func waitJob(t *testing.T, bin, url, id string, timeout time.Duration, what string, ok func(*runner.JobView) bool) *runner.JobView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := status(t, bin, url, id)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: %s: not after %s; state %s (%s), pid %d\nlast output: %s", id, what, timeout, v.State, v.Reason, v.PID, v.OutputTail)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || !bytes.HasPrefix(bytes.TrimSpace(data[i+1:]), []byte("Z"))
}

// waitDead waits until pid is gone.
func waitDead(t *testing.T, pid int, why string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still alive 10s after %s", pid, why)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func submitted(t *testing.T, out string) string {
	t.Helper()
	var v runner.JobView
	if err := json.Unmarshal([]byte(out), &v); err != nil || v.ID == "" {
		t.Fatalf("submit output: %v\n%s", err, out)
	}
	return v.ID
}
