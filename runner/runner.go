package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	// DataDir holds the job table, binaries, working directories and, by
	// default, the checkpoints. Required.
	DataDir string
	// CheckpointRoot is the URL under which each job gets its store
	// (<root>/<job id>). Default file://<DataDir>/checkpoints.
	CheckpointRoot string
	// PollInterval is how often a job's status is read. Default 1s.
	PollInterval time.Duration
	// StopGrace is how long a job has to exit after SIGTERM before SIGKILL.
	// Default 10s.
	StopGrace time.Duration
	// StableAfter is how long a process must run for its failures in a row to
	// be forgotten even without a completed checkpoint. Default 1m.
	StableAfter time.Duration
	// Logger receives the runner's structured log. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.DataDir == "" {
		return c, errors.New("runner: no data directory")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return c, fmt.Errorf("runner: data directory: %w", err)
	}
	c.DataDir = abs
	if c.CheckpointRoot == "" {
		c.CheckpointRoot = "file://" + filepath.Join(abs, "checkpoints")
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.StopGrace <= 0 {
		c.StopGrace = 10 * time.Second
	}
	if c.StableAfter <= 0 {
		c.StableAfter = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Runner supervises the jobs of one data directory.
type Runner struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File // flock on runner.lock

	ctx    context.Context // cancelled by Close: supervisors stop their processes
	cancel context.CancelFunc
	wg     sync.WaitGroup // supervisors

	mu     sync.Mutex
	tbl    *table
	jobs   map[string]*entry
	stores map[string]checkpoint.Store
}

// entry is a job and what the runner knows about it in memory. Its fields
// are guarded by Runner.mu.
type entry struct {
	job *Job
	// supervised is true while a supervisor goroutine owns the job.
	supervised bool
	// pending is a command for the supervisor; wake tells it there is one.
	pending *command
	wake    chan struct{}
	// stopping is set while a stop with savepoint is in flight; stopDone is
	// closed when that request has returned, stopOK if its savepoint
	// completed.
	stopping bool
	stopDone chan struct{}
	stopOK   bool
	// resumingStop is set while resumeStop re-issues a stop with savepoint.
	resumingStop bool
	ctl          *controlClient // nil when no process runs

	status     *engine.Status
	statusAt   time.Time
	inRate     float64
	outRate    float64
	progressed bool // the current process completed a checkpoint
	lastSeenID uint64
	metrics    jobMetrics
}

type command struct {
	cancel      bool
	restore     string // manifest name in the job's store, or "latest"
	floor       uint64
	parallelism *int
}

// Open takes the data directory (one runner at a time), loads the job table,
// kills processes a previous runner left behind, and starts supervising every
// job that was meant to run. Those restart from their latest checkpoint.
func Open(cfg Config) (*Runner, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.DataDir, filepath.Join(cfg.DataDir, "jobs"), filepath.Join(cfg.DataDir, "bin"), filepath.Join(cfg.DataDir, "run")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("runner: create %s: %w", d, err)
		}
	}
	lock, err := os.OpenFile(filepath.Join(cfg.DataDir, "runner.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("runner: open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("runner: data directory %s is in use by another runner: %w", cfg.DataDir, err)
	}
	tbl, err := loadTable(filepath.Join(cfg.DataDir, "jobs.json"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("runner: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Runner{cfg: cfg, log: cfg.Logger, lock: lock, ctx: ctx, cancel: cancel, tbl: tbl,
		jobs: map[string]*entry{}, stores: map[string]checkpoint.Store{}}
	for _, j := range tbl.Jobs {
		r.jobs[j.ID] = &entry{job: j, wake: make(chan struct{}, 1)}
	}
	// Kill every orphan before starting anything: a job must never run twice.
	for _, j := range tbl.Jobs {
		killed, err := killOrphan(j, 10*time.Second)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("runner: %w", err)
		}
		if killed {
			r.log.Warn("killed a job process left by a previous runner", "job", j.ID, "pid", j.PID)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweepBinariesLocked()
	for _, e := range r.jobs {
		if Active(e.job.State) {
			r.log.Info("resuming job after runner start", "job", e.job.ID, "state", e.job.State)
			if e.job.State == StateStopping || e.job.StopRequestedAt != nil {
				r.keepStopIntentLocked(e)
			}
			r.superviseLocked(e)
		}
	}
	return r, nil
}

// Close stops every job process (SIGTERM, then SIGKILL after StopGrace) but
// keeps their states: the next Open resumes them.
func (r *Runner) Close() error {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	err := r.saveLocked()
	r.mu.Unlock()
	r.lock.Close() // releases the flock
	return err
}

// saveLocked writes the job table.
func (r *Runner) saveLocked() error {
	if err := saveTable(filepath.Join(r.cfg.DataDir, "jobs.json"), r.tbl); err != nil {
		r.log.Error("save job table", "err", err)
		return err
	}
	return nil
}

// superviseLocked starts a supervisor for e.
func (r *Runner) superviseLocked(e *entry) {
	e.supervised = true
	r.wg.Add(1)
	go r.supervise(e)
}

// storeFor opens (once) the checkpoint store of job id.
func (r *Runner) storeFor(ctx context.Context, j *Job) (checkpoint.Store, error) {
	r.mu.Lock()
	s, ok := r.stores[j.ID]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := checkpoint.Open(ctx, j.Store)
	if err != nil {
		return nil, fmt.Errorf("open checkpoint store of job %s: %w", j.ID, err)
	}
	r.mu.Lock()
	r.stores[j.ID] = s
	r.mu.Unlock()
	return s, nil
}

func (r *Runner) jobDir(id string) string { return filepath.Join(r.cfg.DataDir, "jobs", id) }

// socketPath is the control socket of job id. Unix socket paths are limited
// to 108 bytes; a deep data directory falls back to the temp directory.
func (r *Runner) socketPath(id string) string {
	p := filepath.Join(r.cfg.DataDir, "run", id+".sock")
	if len(p) < 100 {
		return p
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("onceflow-%d-%s.sock", os.Getpid(), id))
}
