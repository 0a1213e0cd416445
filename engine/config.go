package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine/state"
)

// Config is how a job runs. The zero value of every field but Store has a
// documented default.
type Config struct {
	// Store holds checkpoints. Required.
	Store checkpoint.Store
	// CheckpointInterval between periodic checkpoints; 0 disables them (a
	// bounded job still takes its final checkpoint so its sinks commit).
	CheckpointInterval time.Duration
	// CheckpointTimeout aborts a checkpoint that has not completed. Default 1m.
	CheckpointTimeout time.Duration
	// MinPause between the end of a checkpoint and the next trigger. Default 0.
	MinPause time.Duration
	// TolerableFailures is how many consecutive failed checkpoints are
	// tolerated before the job fails (and restarts). Default 0.
	TolerableFailures int
	// Retained completed checkpoints (older ones are garbage collected).
	// Default 2.
	Retained int
	// Restart decides whether and when a failed job restarts from its latest
	// checkpoint. Default: fixed delay, unlimited restarts, 1s apart.
	Restart RestartStrategy
	// Restore chooses the starting point: "" or "latest" (the newest completed
	// checkpoint, if any), "none" (fresh state), or the object name of a
	// checkpoint or savepoint manifest in Store.
	Restore string
	// AllowNonRestoredState lets a restore skip state of operators the job no
	// longer has; without it that is an error.
	AllowNonRestoredState bool
	// Parallelism, when > 0, replaces the job's default parallelism for
	// operators that do not set their own.
	Parallelism int
	// StateBackend for keyed state. Default state.Memory.
	StateBackend state.Factory
	// UploadConcurrency is the number of asynchronous snapshot uploads in
	// flight. Default 4.
	UploadConcurrency int
	// Logger for lifecycle events. Default slog.Default().
	Logger *slog.Logger
	// Faults, when set, is called at named protocol points; an error it
	// returns (or a panic) is injected there. For tests.
	Faults FaultHook
	// Listener, when set, is told about checkpoints and restarts.
	Listener Listener
	// Control, when set, lets a supervisor trigger checkpoints and
	// savepoints, stop the job with a savepoint and read its status.
	Control *Control
	// Tick is the coordinator's clock resolution. Default 10ms.
	Tick time.Duration
}

// Listener observes a running job (metrics, tests, the runner).
type Listener interface {
	CheckpointCompleted(m *checkpoint.Manifest, duration time.Duration)
	CheckpointAborted(id uint64, reason string)
	Restarting(attempt int, cause error, delay time.Duration)
}

// FaultPoint names a protocol point where a test can inject a failure.
type FaultPoint string

const (
	// FaultSnapshot: in a subtask, before the synchronous part of a snapshot.
	FaultSnapshot FaultPoint = "snapshot"
	// FaultUpload: before the asynchronous upload of a subtask's state.
	FaultUpload FaultPoint = "upload"
	// FaultCommit: in a sink, before committing completed transactions.
	FaultCommit FaultPoint = "commit"
	// FaultBeforeNotify: in the coordinator, after the manifest is durable
	// and before any subtask is told the checkpoint completed.
	FaultBeforeNotify FaultPoint = "before-notify"
	// FaultPreCommit: in a transactional sink, after PreCommit prepared its
	// transaction and before the committable joins the snapshot: a failure
	// here leaves a prepared transaction that no checkpoint references, which
	// recovery must abort.
	FaultPreCommit FaultPoint = "pre-commit"
)

// FaultHook returns an error to inject a failure at point (or panics).
type FaultHook func(point FaultPoint, task checkpoint.TaskID, checkpointID uint64) error

func (c Config) withDefaults() Config {
	if c.CheckpointTimeout == 0 {
		c.CheckpointTimeout = time.Minute
	}
	if c.Retained == 0 {
		c.Retained = 2
	}
	if c.Restart.Kind == 0 {
		c.Restart = FixedDelayRestart(-1, time.Second)
	}
	if c.StateBackend == nil {
		c.StateBackend = state.Memory
	}
	if c.UploadConcurrency == 0 {
		c.UploadConcurrency = 4
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Tick == 0 {
		c.Tick = 10 * time.Millisecond
	}
	return c
}

// Validate reports every invalid setting.
func (c Config) Validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("no checkpoint store (Config.Store)"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"checkpoint interval", c.CheckpointInterval}, {"checkpoint timeout", c.CheckpointTimeout}, {"min pause", c.MinPause}, {"tick", c.Tick}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v: must not be negative", d.name, d.v))
		}
	}
	if c.TolerableFailures < 0 {
		errs = append(errs, fmt.Errorf("tolerable checkpoint failures %d: must not be negative", c.TolerableFailures))
	}
	if c.Retained < 0 {
		errs = append(errs, fmt.Errorf("retained checkpoints %d: must be at least 1", c.Retained))
	}
	if c.Parallelism < 0 {
		errs = append(errs, fmt.Errorf("parallelism %d: must not be negative", c.Parallelism))
	}
	if c.UploadConcurrency < 0 {
		errs = append(errs, fmt.Errorf("upload concurrency %d: must not be negative", c.UploadConcurrency))
	}
	if err := c.Restart.validate(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid config: %w", errors.Join(errs...))
	}
	return nil
}

// ticks converts a duration to coordinator ticks, rounding up so that a
// non-zero setting never becomes zero.
func (c Config) ticks(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + c.Tick - 1) / c.Tick)
}
