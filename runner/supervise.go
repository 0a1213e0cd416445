package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/engine"
)

// supervise owns job e's process: it starts it, restarts it after crashes
// under the job's restart policy, and carries out cancel and restore
// commands, until the job reaches a terminal state or the runner closes.
func (r *Runner) supervise(e *entry) {
	defer r.wg.Done()
	ctx := r.ctx
	for {
		r.mu.Lock()
		cmd := e.pending
		e.pending = nil
		select { // the command is taken: its wake-up is spent too
		case <-e.wake:
		default:
		}
		if cmd != nil {
			r.applyLocked(e, cmd)
		}
		if !Active(e.job.State) || ctx.Err() != nil {
			e.supervised = false
			r.mu.Unlock()
			return
		}
		job := *e.job
		r.mu.Unlock()

		if !r.waitNextStart(ctx, e, job.NextStartAt) {
			continue // a command, or the runner closing: the loop sees which
		}
		p, err := r.startProcess(ctx, e, &job)
		if err != nil {
			if ctx.Err() != nil {
				r.markSupervisorDone(e)
				return
			}
			r.log.Error("start job", "job", job.ID, "err", err)
			if errors.Is(err, errPermanentStart) {
				r.finish(e, StateFailed, err.Error())
				continue
			}
			r.backoff(e, err.Error())
			continue
		}
		out := r.watch(ctx, e, p)
		if ctx.Err() != nil {
			r.markSupervisorDone(e) // keep the state: the next runner resumes it
			return
		}
		if out.interrupted { // a command ended the process; the loop applies it
			continue
		}
		r.classify(e, p, out)
	}
}

func (r *Runner) markSupervisorDone(e *entry) {
	r.mu.Lock()
	e.supervised = false
	r.mu.Unlock()
}

// applyLocked carries out a command before the next process starts.
func (r *Runner) applyLocked(e *entry, cmd *command) {
	switch {
	case cmd.cancel:
		r.endLocked(e, StateCancelled, "cancelled by user")
	case cmd.restore != "":
		j := e.job
		j.Restore, j.RestoreFloor = cmd.restore, cmd.floor
		if cmd.parallelism != nil {
			j.Parallelism = *cmd.parallelism
		}
		j.State, j.Reason, j.EndedAt, j.NextStartAt = StateStarting, "", nil, nil
		j.ConsecutiveFailures = 0
		j.StopRequestedAt = nil // a restore replaces any stop still pending
		r.log.Info("restoring job", "job", j.ID, "from", j.Restore, "parallelism", j.Parallelism)
		_ = r.saveLocked()
	}
}

func (r *Runner) endLocked(e *entry, state, reason string) {
	now := time.Now().UTC()
	j := e.job
	j.State, j.Reason, j.EndedAt, j.NextStartAt = state, reason, &now, nil
	j.PID, j.PIDStart, j.StopRequestedAt = 0, 0, nil
	r.log.Info("job ended", "job", j.ID, "state", state, "reason", reason)
	_ = r.saveLocked()
}

func (r *Runner) finish(e *entry, state, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endLocked(e, state, reason)
}

var errPermanentStart = errors.New("the job binary cannot be started")

// process is a started job process.
type process struct {
	cmd     *exec.Cmd
	pid     int
	started time.Time
	logPath string
	logFrom int64 // offset of this process's output in the log
	exited  chan struct{}
	state   *os.ProcessState
	waitErr error
}

// startProcess starts one process of the job from its restart point.
func (r *Runner) startProcess(ctx context.Context, e *entry, j *Job) (*process, error) {
	if _, err := os.Stat(j.Binary); err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanentStart, err)
	}
	point, err := r.restartPoint(ctx, j)
	if err != nil {
		return nil, err
	}
	dir := r.jobDir(j.ID)
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o700); err != nil {
		return nil, fmt.Errorf("create working directory: %w", err)
	}
	logPath := filepath.Join(dir, "output.log")
	rotateLog(logPath)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open output log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "=== onceflow runner: start %d of job %s at %s, restore %s, parallelism %d\n",
		j.Starts+1, j.ID, time.Now().UTC().Format(time.RFC3339), point, j.Parallelism)
	from, _ := logf.Seek(0, 2)
	sock := r.socketPath(j.ID)
	_ = os.Remove(sock)

	cmd := exec.Command(j.Binary, j.Args...)
	cmd.Dir = work
	cmd.Env = jobEnv(j, point, sock)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := spawn(cmd); err != nil {
		return nil, fmt.Errorf("%w: %v", errPermanentStart, err)
	}
	p := &process{cmd: cmd, pid: cmd.Process.Pid, started: time.Now(), logPath: logPath, logFrom: from, exited: make(chan struct{})}
	go func() { // owned by the supervisor, which always waits for exited
		p.waitErr = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	pidStart, _, err := procStart(p.pid)
	if err != nil {
		r.log.Warn("read start time of job process", "job", j.ID, "pid", p.pid, "err", err)
	}
	now := time.Now().UTC()
	r.mu.Lock()
	ej := e.job
	if ej.Starts > 0 {
		ej.ProcessRestarts++
	}
	ej.Starts++
	ej.PID, ej.PIDStart, ej.StartedAt, ej.NextStartAt = p.pid, pidStart, &now, nil
	ej.State = StateStarting
	e.ctl = newControlClient(sock)
	e.status, e.progressed, e.inRate, e.outRate = nil, false, 0, 0
	_ = r.saveLocked()
	r.mu.Unlock()
	r.log.Info("job process started", "job", j.ID, "pid", p.pid, "restore", point, "parallelism", j.Parallelism)
	return p, nil
}

// rotateLog keeps a job's output log bounded: past 16 MiB it becomes
// output.log.1 (replacing the previous one).
func rotateLog(path string) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > 16<<20 {
		_ = os.Rename(path, path+".1")
	}
}

// jobEnv is the runner's environment without the engine's ONCEFLOW_*
// settings (the runner's own would leak into every job), plus the job's own
// variables and its configuration.
func jobEnv(j *Job, restore, sock string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !engineVars[k] {
			env = append(env, kv)
		}
	}
	for k, v := range j.Env {
		env = append(env, k+"="+v)
	}
	for k, v := range j.Config {
		env = append(env, configEnv[k]+"="+v)
	}
	env = append(env,
		"ONCEFLOW_CHECKPOINT_STORE="+j.Store,
		"ONCEFLOW_RESTORE="+restore,
		"ONCEFLOW_CONTROL_SOCKET="+sock,
	)
	if j.Parallelism > 0 {
		env = append(env, fmt.Sprintf("ONCEFLOW_PARALLELISM=%d", j.Parallelism))
	}
	return env
}

// restartPoint is where the next process of j starts: the lineage's start
// point until a checkpoint above RestoreFloor exists, then the newest.
func (r *Runner) restartPoint(ctx context.Context, j *Job) (string, error) {
	if j.Restore == "latest" || j.Restore == "" {
		return "latest", nil
	}
	pp, err := parseManifest(j.Restore)
	if err != nil {
		return "", err
	}
	s, err := r.storeFor(ctx, j)
	if err != nil {
		return "", err
	}
	high, err := highestID(ctx, s, pp.engineJob)
	if err != nil {
		return "", fmt.Errorf("find the restart point of job %s: %w", j.ID, err)
	}
	if high > j.RestoreFloor {
		return "latest", nil
	}
	return j.Restore, nil
}

type exitInfo struct {
	interrupted bool // ended by a command (cancel, restore)
}

// watch waits for the process to exit, polling its status meanwhile. A
// command or the runner's close terminates it first.
func (r *Runner) watch(ctx context.Context, e *entry, p *process) exitInfo {
	pollCtx, stopPoll := context.WithCancel(ctx)
	polled := make(chan struct{})
	r.mu.Lock()
	ctl := e.ctl
	r.mu.Unlock()
	go func() { defer close(polled); r.poll(pollCtx, e, ctl) }()
	defer func() {
		stopPoll()
		<-polled
		ctl.close()
		r.mu.Lock()
		e.ctl = nil
		r.mu.Unlock()
	}()
	select {
	case <-p.exited:
		return exitInfo{}
	case <-e.wake:
		r.terminate(p)
		return exitInfo{interrupted: true}
	case <-ctx.Done():
		r.terminate(p)
		return exitInfo{interrupted: true}
	}
}

// terminate asks the process to stop (SIGTERM: the engine cancels cleanly),
// then kills it after StopGrace, and waits for it.
func (r *Runner) terminate(p *process) {
	_ = syscall.Kill(-p.pid, syscall.SIGTERM)
	t := time.NewTimer(r.cfg.StopGrace)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		<-p.exited
	}
}

// classify decides what a process exit means for the job.
func (r *Runner) classify(e *entry, p *process, _ exitInfo) {
	tail := readTail(p.logPath, p.logFrom, 4096)
	how := describeExit(p.state, p.waitErr)
	code := -1
	if p.state != nil {
		code = p.state.ExitCode()
	}
	r.mu.Lock()
	stopDone := e.stopDone
	progressed := e.progressed || time.Since(p.started) >= r.cfg.StableAfter
	r.mu.Unlock()
	stopped := false
	if stopDone != nil {
		// A stop with savepoint is in flight: the process may exit before
		// its answer reaches the runner. Its outcome decides.
		t := time.NewTimer(10 * time.Second)
		select {
		case <-stopDone:
		case <-t.C:
		}
		t.Stop()
		r.mu.Lock()
		stopped = e.stopOK || code == 0
		e.stopping, e.stopDone, e.stopOK = false, nil, false
		r.mu.Unlock()
	}
	last := lastLines(tail, 3)
	switch {
	case stopped && code == 0:
		r.finish(e, StateStopped, "stopped with savepoint")
		return
	case stopped:
		// The savepoint completed; what the binary did afterwards (such as
		// checking its output) failed, but the job is stopped all the same.
		r.finish(e, StateStopped, fmt.Sprintf("stopped with savepoint; then the process ended with %s: %s", how, last))
		return
	case code == 0:
		r.finish(e, StateFinished, "input ended; exited 0")
		return
	case code == engine.ExitConfig:
		r.finish(e, StateFailed, "bad configuration (exit status 2): "+last)
		return
	case code == engine.ExitPermanent:
		r.finish(e, StateFailed, "cannot be restarted (exit status 3): "+last)
		return
	case strings.Contains(tail, "cannot be restarted"):
		// Binaries built before exit status 3 existed say it in words.
		r.finish(e, StateFailed, lineWith(tail, "cannot be restarted"))
		return
	}
	reason := how
	if last != "" {
		reason += ": " + last
	}
	r.log.Warn("job process failed", "job", e.job.ID, "pid", p.pid, "exit", how)
	if progressed {
		r.mu.Lock()
		e.job.ConsecutiveFailures = 0
		r.mu.Unlock()
	}
	r.backoff(e, reason)
}

// backoff records a failure and when the restart policy lets the next
// process start (Job.NextStartAt, durable: a runner restarted meanwhile
// waits out the same delay). When the policy gives up, the job fails.
func (r *Runner) backoff(e *entry, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j := e.job
	j.ConsecutiveFailures++
	pol, err := parseRestartPolicy(j.Restart)
	if err != nil { // validated at submit; a hand-edited table may still be wrong
		r.endLocked(e, StateFailed, err.Error())
		return
	}
	delay, ok := pol.next(j.ConsecutiveFailures)
	if !ok {
		r.endLocked(e, StateFailed, fmt.Sprintf("restart policy %s gives up after %d failures in a row; last: %s", j.Restart, j.ConsecutiveFailures, reason))
		return
	}
	at := time.Now().Add(delay).UTC()
	j.State, j.NextStartAt, j.PID, j.PIDStart = StateRestarting, &at, 0, 0
	j.Reason = reason
	if j.ConsecutiveFailures > 1 {
		j.Reason = fmt.Sprintf("crash-looping: %d failures in a row; last: %s", j.ConsecutiveFailures, reason)
	}
	e.metrics.failures++
	_ = r.saveLocked()
	r.log.Warn("job restarting", "job", j.ID, "delay", delay, "at", at, "failures", j.ConsecutiveFailures, "reason", reason)
}

// waitNextStart waits until at (nil: start now). It returns false when a
// command arrived or the runner is closing: the supervisor loop then applies
// the command (a restore starts at once) or returns.
func (r *Runner) waitNextStart(ctx context.Context, e *entry, at *time.Time) bool {
	if at == nil {
		return true
	}
	delay := time.Until(*at)
	if delay <= 0 {
		return true
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.wake:
		notify(e.wake) // leave it for the loop, which takes the command with it
		return false
	case <-ctx.Done():
		return false
	}
}
