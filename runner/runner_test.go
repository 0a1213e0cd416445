package runner

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Runner {
	t.Helper()
	r, err := Open(Config{DataDir: dir, PollInterval: 50 * time.Millisecond, StopGrace: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// script writes an executable shell script.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitState polls the job until it is in state (no event tells a test when a
// supervisor moved on).
func waitState(t *testing.T, r *Runner, id, state string) *JobView {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := r.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if v.State == state {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s is %s (%s), want %s", id, v.State, v.Reason, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func submit(t *testing.T, r *Runner, req SubmitRequest) string {
	t.Helper()
	v, err := r.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return v.ID
}

func TestExitClassification(t *testing.T) {
	r := openTest(t, t.TempDir())
	defer r.Close()

	// A job that ends its input and exits 0 is finished.
	fin := submit(t, r, SubmitRequest{Path: script(t, "echo done")})
	waitState(t, r, fin, StateFinished)

	// Exit status 2 is bad configuration: failed at once, not restarted.
	cfg := submit(t, r, SubmitRequest{Path: script(t, "echo 'job: -keys 3: must be a multiple of 4' >&2; exit 2")})
	v := waitState(t, r, cfg, StateFailed)
	if !strings.Contains(v.Reason, "bad configuration") || !strings.Contains(v.Reason, "-keys 3") || v.ProcessRestarts != 0 {
		t.Errorf("bad configuration: %+v", v.Job)
	}

	// A job that says it cannot be restarted stops with its reason.
	perm := submit(t, r, SubmitRequest{Path: script(t, `echo 'some log line'; echo 'wc: job "wc" failed and cannot be restarted: checkpoint 7 is corrupt' >&2; exit 1`)})
	v = waitState(t, r, perm, StateFailed)
	if !strings.Contains(v.Reason, "checkpoint 7 is corrupt") || v.ProcessRestarts != 0 {
		t.Errorf("permanent failure: %+v", v.Job)
	}

	// Exit status 3 is engine.ExitPermanent: failed at once, not restarted.
	perm3 := submit(t, r, SubmitRequest{Path: script(t, `echo 'wc: checkpoint 9: state object missing' >&2; exit 3`)})
	v = waitState(t, r, perm3, StateFailed)
	if !strings.Contains(v.Reason, "exit status 3") || !strings.Contains(v.Reason, "state object missing") || v.ProcessRestarts != 0 {
		t.Errorf("permanent failure by exit status: %+v", v.Job)
	}

	// A crash loop backs off, says why, and fails when the policy gives up.
	loop := submit(t, r, SubmitRequest{Path: script(t, "echo 'panic: boom' >&2; exit 1"), Restart: "fixed:2:20ms"})
	v = waitState(t, r, loop, StateFailed)
	if !strings.Contains(v.Reason, "gives up after 3 failures") || !strings.Contains(v.Reason, "panic: boom") || v.ProcessRestarts != 2 {
		t.Errorf("crash loop: %+v", v.Job)
	}

	// A crash loop with a long backoff is RESTARTING with the reason, and
	// can be cancelled while it waits.
	slow := submit(t, r, SubmitRequest{Path: script(t, "exit 4"), Restart: "fixed:-1:1h"})
	v = waitState(t, r, slow, StateRestarting)
	if !strings.Contains(v.Reason, "exit status 4") || v.NextStartAt == nil {
		t.Errorf("restarting: %+v", v.Job)
	}
	if _, err := r.Cancel(slow); err != nil {
		t.Fatal(err)
	}
	waitState(t, r, slow, StateCancelled)
	if _, err := r.Cancel(slow); err == nil {
		t.Error("cancelling a cancelled job succeeded")
	}
}

// TestOrphanKilledAndResumed records a running process in the job table as
// a SIGKILLed runner would leave it: the next runner kills it before it
// starts the job again.
func TestOrphanKilledAndResumed(t *testing.T) {
	dir := t.TempDir()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary")
	}
	sleep, _ = filepath.EvalSymlinks(sleep)
	orphan := exec.Command(sleep, "300")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { orphan.Wait(); close(exited) }()
	start, _, err := procStart(orphan.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &table{Version: tableVersion, NextID: 2, Jobs: []*Job{{
		ID: "j1", Name: "sleep", Binary: sleep, Args: []string{"300"}, Restart: DefaultRestart,
		Store: "file://" + filepath.Join(dir, "checkpoints", "j1"), State: StateRunning, Restore: "latest",
		PID: orphan.Process.Pid, PIDStart: start, Starts: 1,
	}}}
	data, _ := json.Marshal(tbl)
	if err := os.WriteFile(filepath.Join(dir, "jobs.json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	r := openTest(t, dir)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		orphan.Process.Kill()
		t.Fatal("the orphan survived the new runner's start")
	}
	// The job runs again, as a new process. (sleep never answers on the
	// control socket, so it stays STARTING.)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := r.Get("j1")
		if v.PID != 0 && v.PID != orphan.Process.Pid && v.State == StateStarting {
			if v.ProcessRestarts != 1 {
				t.Errorf("process restarts %d, want 1", v.ProcessRestarts)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not restarted: %+v", v.Job)
		}
		time.Sleep(10 * time.Millisecond)
	}
	v, _ := r.Get("j1")
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, zombie, err := procStart(v.PID); err == nil && !zombie {
		t.Errorf("job process %d outlived Close", v.PID)
	}
	// Close keeps the state: the next runner resumes the job.
	tbl2, err := loadTable(filepath.Join(dir, "jobs.json"))
	if err != nil || tbl2.Jobs[0].State != StateStarting {
		t.Fatalf("table after close: %+v %v", tbl2.Jobs[0], err)
	}
}

func TestOneRunnerPerDataDir(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir)
	defer r.Close()
	if _, err := Open(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second runner on one data directory: %v", err)
	}
}
