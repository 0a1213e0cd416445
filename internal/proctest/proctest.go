// Package proctest runs job binaries as child processes for crash tests:
// build once, start, SIGKILL at a chosen moment, wait.
package proctest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
	binDir  string
)

// Build compiles the main package pkg (an import path) once per test binary
// and returns the executable's path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin
	}
	if binDir == "" {
		dir, err := os.MkdirTemp("", "onceflow-proctest-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	bin := filepath.Join(binDir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// Proc is a running child process.
type Proc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	err    error
	output *syncBuffer
}

// Start runs bin with args and extra environment; output is captured.
func Start(t testing.TB, bin string, args []string, env ...string) *Proc {
	t.Helper()
	p := &Proc{done: make(chan struct{}), output: &syncBuffer{}}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.output, p.output
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return p
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the exit error once Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Output returns everything the process printed so far.
func (p *Proc) Output() string { return p.output.String() }

// Kill sends SIGKILL and waits for the process to be gone. It reports
// whether the kill happened (false if the process had already exited).
func (p *Proc) Kill() bool {
	select {
	case <-p.done:
		return false
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	return true
}

// Wait waits up to timeout for the process to exit on its own.
func (p *Proc) Wait(timeout time.Duration) (exited bool) {
	select {
	case <-p.done:
		return true
	case <-time.After(timeout):
		return false
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// ExitCode is the process's exit status once it has exited (-1 if killed).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}
