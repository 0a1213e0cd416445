package checkpoint

// This file is the vocabulary of the checkpoint protocol: the messages the
// coordinator and the aligner take in and the effects they give out. Both are
// pure state machines (etcd/raft style): no I/O, no clock, no goroutines. The
// engine's loop feeds them messages and executes the effects.

// TaskID identifies one subtask of one operator.
type TaskID struct {
	Operator string
	Subtask  int
}

func (t TaskID) String() string { return t.Operator + "/" + itoa(uint64(t.Subtask)) }

// Barrier travels in the data stream from the sources to the sinks.
type Barrier struct {
	ID   uint64
	Kind Kind
	// Final marks the last checkpoint of a bounded job: every source has
	// reached its end, and once it completes the job finishes.
	Final bool
}

// CoordinatorConfig configures a Coordinator. Times are in ticks; the loop
// decides how long a tick is.
type CoordinatorConfig struct {
	Job            string
	MaxParallelism int
	// Operators with their parallelism; every subtask must acknowledge.
	Operators []OperatorInfo
	// Sources are the operators whose subtasks inject barriers.
	Sources []string
	// IntervalTicks between checkpoint triggers; 0 disables periodic
	// checkpoints (a bounded job still takes its final checkpoint).
	IntervalTicks int
	// TimeoutTicks after which a pending checkpoint is aborted. Must be > 0.
	TimeoutTicks int
	// MinPauseTicks between the end of one checkpoint and the next trigger.
	MinPauseTicks int
	// TolerableFailures is how many consecutive failed checkpoints are
	// tolerated; one more fails the job.
	TolerableFailures int
	// Retained is how many completed checkpoints are kept (>= 1).
	Retained int
	// NextID is the id of the first checkpoint this coordinator triggers.
	NextID uint64
	// Completed are the ids of completed checkpoints already in the store,
	// oldest first, subject to retention.
	Completed []uint64
}

// OperatorInfo names an operator and its parallelism.
type OperatorInfo struct {
	Name        string
	Parallelism int
}

// Messages into the coordinator.
type (
	// Tick advances the coordinator's time by one tick.
	Tick struct{}
	// TriggerRequest asks for a checkpoint or savepoint now (if one is in
	// progress, it is queued until that one ends). With Stop, a savepoint
	// stops the job: its barrier is final, so the sources stop reading when
	// they inject it, and once it completes the job finishes with every sink
	// committed. If it aborts, the sources resume and the job goes on.
	TriggerRequest struct {
		Kind Kind
		Stop bool
	}
	// Ack is a subtask's acknowledgement of checkpoint ID with its state.
	Ack struct {
		ID    uint64
		Task  TaskID
		State SubtaskState
	}
	// Decline is a subtask's refusal of checkpoint ID (snapshot or upload failed).
	Decline struct {
		ID     uint64
		Task   TaskID
		Reason string
	}
	// ManifestWritten reports the outcome of a WriteManifest effect.
	ManifestWritten struct {
		ID  uint64
		Err error
	}
	// SourceFinished reports that a source subtask reached the end of its input.
	SourceFinished struct{ Task TaskID }
)

// Effects out of the coordinator, executed by the loop in order.
type (
	// InjectBarrier tells every source subtask to inject the barrier.
	InjectBarrier struct{ Barrier Barrier }
	// WriteManifest asks the loop to write the manifest with PutIfAbsent and to
	// report the outcome with ManifestWritten.
	WriteManifest struct{ Manifest *Manifest }
	// NotifyComplete tells every subtask that checkpoint ID (and so every
	// earlier one) is complete: sinks commit.
	NotifyComplete struct {
		ID    uint64
		Final bool
	}
	// NotifyAborted tells every subtask that checkpoint ID was abandoned.
	NotifyAborted struct {
		ID     uint64
		Reason string
	}
	// DeleteCheckpoints asks the loop to delete these completed checkpoints
	// (retention) and then collect garbage.
	DeleteCheckpoints struct{ IDs []uint64 }
	// FailJob stops the job: too many failed checkpoints, or the guarantee
	// cannot be kept (another incarnation completed the same checkpoint id).
	FailJob struct{ Err error }
	// JobFinished reports that the final checkpoint completed.
	JobFinished struct{}
)

// Effect is one of the effect types above.
type Effect any

// Messages into the aligner.
type (
	// BarrierIn is a barrier read from input Input.
	BarrierIn struct {
		Input   int
		Barrier Barrier
	}
	// InputEnded reports that input Input delivered its end of stream.
	InputEnded struct{ Input int }
)

// Effects out of the aligner.
type (
	// Block stops reading input Input until Unblock.
	Block struct{ Input int }
	// UnblockAll resumes reading every input.
	UnblockAll struct{}
	// Snapshot: take the snapshot for Barrier and forward it downstream; every
	// live input has delivered it (or ended).
	Snapshot struct{ Barrier Barrier }
	// AbortAlignment: checkpoint ID was overtaken by a newer barrier before it
	// aligned; it will never be acknowledged by this subtask.
	AbortAlignment struct{ ID uint64 }
)
