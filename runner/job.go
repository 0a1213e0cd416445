package runner

import (
	"time"

	"github.com/onceflow/onceflow/engine"
)

// Runner job states. A job in an active state has a supervisor; the others
// are terminal until a restore starts it again.
const (
	StateStarting   = "STARTING"   // process started, no status yet
	StateRunning    = "RUNNING"    // process answers on its control socket
	StateRestarting = "RESTARTING" // process died; waiting out the backoff
	StateStopping   = "STOPPING"   // stop with savepoint in progress
	StateStopped    = "STOPPED"    // stopped with a savepoint (LastSavepoint)
	StateFinished   = "FINISHED"   // its input ended and it exited 0
	StateFailed     = "FAILED"     // cannot or must not be restarted (Reason)
	StateCancelled  = "CANCELLED"  // cancelled by a user
)

// Active reports whether a job in state s is meant to be running.
func Active(s string) bool {
	switch s {
	case StateStarting, StateRunning, StateRestarting, StateStopping:
		return true
	}
	return false
}

// Job is a row of the durable job table.
type Job struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Binary string   `json:"binary"` // absolute path of the executable
	Args   []string `json:"args,omitempty"`
	// Parallelism is passed as ONCEFLOW_PARALLELISM; 0 = the job's own.
	Parallelism int               `json:"parallelism,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Restart     string            `json:"restart"` // process restart policy
	Store       string            `json:"store"`   // checkpoint store URL

	State       string     `json:"state"`
	Reason      string     `json:"reason,omitempty"` // why it failed or restarts
	SubmittedAt time.Time  `json:"submitted_at"`
	EndedAt     *time.Time `json:"ended_at,omitempty"`

	// Restore is where the current lineage started: "latest", or the
	// manifest name (in Store) of a checkpoint or savepoint. RestoreFloor is
	// the highest checkpoint id in the store when it started: once a
	// checkpoint above it exists, the lineage restarts from "latest".
	Restore      string `json:"restore"`
	RestoreFloor uint64 `json:"restore_floor,omitempty"`
	// EngineJob is the name the binary gave its job (engine.NewJob), learned
	// from its status; the first segment of its objects in the store.
	EngineJob string `json:"engine_job,omitempty"`

	PID       int        `json:"pid,omitempty"`
	PIDStart  uint64     `json:"pid_start,omitempty"` // /proc/<pid>/stat start time: tells a reused pid
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Starts counts processes started; ProcessRestarts those after a crash.
	Starts              int        `json:"starts"`
	ProcessRestarts     int        `json:"process_restarts"`
	ConsecutiveFailures int        `json:"consecutive_failures,omitempty"`
	NextStartAt         *time.Time `json:"next_start_at,omitempty"`
	LastSavepoint       string     `json:"last_savepoint,omitempty"` // path (see RestorePoint)
	// StopRequestedAt is set while a stop with savepoint is wanted and not
	// done: a runner that restarts meanwhile stops the job again, with a
	// new savepoint, once it runs (see resumeStop).
	StopRequestedAt *time.Time `json:"stop_requested_at,omitempty"`
}

// JobView is a job with what its running process last reported.
type JobView struct {
	Job
	Engine      *EngineView             `json:"engine,omitempty"`
	Checkpoints []CheckpointView        `json:"checkpoints"` // newest first
	Operators   []engine.OperatorStatus `json:"operators"`
	// Input and output records (sources' out, sinks' in) of the current
	// process, and their rates over the last status interval.
	InputRecords         int64   `json:"input_records"`
	OutputRecords        int64   `json:"output_records"`
	InputRate            float64 `json:"input_rate"`
	OutputRate           float64 `json:"output_rate"`
	CheckpointsCompleted int     `json:"checkpoints_completed"` // seen by this runner
	OutputTail           string  `json:"output_tail,omitempty"`
}

// EngineView is the engine's own view of the job in its process.
type EngineView struct {
	Job         string     `json:"job"`
	State       string     `json:"state"`
	Attempt     int        `json:"attempt"`
	Restarts    int        `json:"restarts"`
	LastFailure string     `json:"last_failure,omitempty"`
	FailedAt    *time.Time `json:"failed_at,omitempty"`
}

// CheckpointView is a checkpoint the process reported, with its path.
type CheckpointView struct {
	engine.CheckpointInfo
	Path string `json:"path,omitempty"` // "<job id>/<manifest>": a restore point
}

// RestorePoint is a completed checkpoint or savepoint in a job's store.
type RestorePoint struct {
	// Path names it across the runner: "<runner job id>/<manifest name>".
	Path      string    `json:"path"`
	Job       string    `json:"job"`
	EngineJob string    `json:"engine_job"`
	Kind      string    `json:"kind"`
	ID        uint64    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	Bytes     int64     `json:"bytes"`
	Manifest  string    `json:"manifest"`
}

// SubmitRequest is the body of POST /v1/jobs.
type SubmitRequest struct {
	Name string `json:"name,omitempty"`
	// Binary is "sha256:<hex>" of an uploaded binary; Path an absolute path
	// on the runner's machine. Exactly one is set.
	Binary      string            `json:"binary,omitempty"`
	Path        string            `json:"path,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Parallelism int               `json:"parallelism,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	Restart     string            `json:"restart,omitempty"`
	// From is a restore point path (RestorePoint.Path) to start from.
	From string `json:"from,omitempty"`
}

// RestoreRequest is the body of POST /v1/jobs/{id}/restore.
type RestoreRequest struct {
	// From is "latest", a restore point path, or a manifest name of the job.
	From        string `json:"from"`
	Parallelism *int   `json:"parallelism,omitempty"` // nil keeps the job's
}

// SavepointResult is what checkpoint, savepoint and stop return.
type SavepointResult struct {
	engine.CheckpointInfo
	Path string `json:"path"`
}
