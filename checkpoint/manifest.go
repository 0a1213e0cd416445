package checkpoint

// Kind tells a checkpoint from a savepoint. Savepoints are user-triggered,
// self-contained and never deleted by retention.
type Kind uint8

const (
	KindCheckpoint Kind = 1
	KindSavepoint  Kind = 2
)

func (k Kind) String() string {
	switch k {
	case KindCheckpoint:
		return "checkpoint"
	case KindSavepoint:
		return "savepoint"
	}
	return "kind(" + itoa(uint64(k)) + ")"
}

// Manifest is the durable description of one completed checkpoint: every state
// handle, every source position and every sink committable of every subtask. A
// checkpoint is complete exactly when its manifest is durable in the store.
type Manifest struct {
	Job              string
	ID               uint64
	Kind             Kind
	CreatedUnixMilli int64
	// MaxParallelism is the number of key groups, fixed for the life of a job.
	MaxParallelism int
	// Operators are sorted by Name.
	Operators []OperatorState
}

// Operator returns the state of the named operator, or nil.
func (m *Manifest) Operator(name string) *OperatorState {
	for i := range m.Operators {
		if m.Operators[i].Name == name {
			return &m.Operators[i]
		}
	}
	return nil
}

// Handles returns every object the manifest references.
func (m *Manifest) Handles() []Handle {
	var hs []Handle
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			hs = append(hs, st.Keyed...)
		}
	}
	return hs
}

// OperatorState is the state of one operator (identified by its stable name)
// at the parallelism it had when the checkpoint was taken.
type OperatorState struct {
	Name        string
	Parallelism int
	// Subtasks are in subtask order; len(Subtasks) == Parallelism.
	Subtasks []SubtaskState
}

// SubtaskState is what one subtask acknowledged for a checkpoint.
type SubtaskState struct {
	Operator string
	Subtask  int
	// KeyGroups is the range of key groups the subtask owned; empty for
	// operators without keyed state.
	KeyGroups KeyGroupRange
	// Keyed are the objects holding the subtask's keyed state.
	Keyed []Handle
	// Positions are the source positions (one per split the subtask read).
	Positions []SourcePosition
	// Committables are the pre-committed, not yet committed sink transactions.
	Committables []Committable
	// Values is other operator (non-keyed) state, by name.
	Values []NamedValue
}

// KeyGroupRange is the half-open range [Start, End) of key groups.
type KeyGroupRange struct{ Start, End int }

// Empty reports whether the range holds no key group.
func (r KeyGroupRange) Empty() bool { return r.End <= r.Start }

// Contains reports whether key group g is in the range.
func (r KeyGroupRange) Contains(g int) bool { return g >= r.Start && g < r.End }

// Intersects reports whether the two ranges share a key group.
func (r KeyGroupRange) Intersects(o KeyGroupRange) bool {
	return !r.Empty() && !o.Empty() && r.Start < o.End && o.Start < r.End
}

// Handle references one object in the store with what is needed to verify it.
type Handle struct {
	Name   string
	Size   int64
	CRC32C uint32
	// KeyGroups the object holds state for (keyed state only).
	KeyGroups KeyGroupRange
}

// SourcePosition is where a source split stands: the next record to read.
type SourcePosition struct {
	Split    string
	Position []byte
}

// Committable is a sink transaction pre-committed for checkpoint
// CheckpointID. It is committed when a checkpoint >= CheckpointID completes,
// or on recovery from a checkpoint that holds it.
type Committable struct {
	CheckpointID uint64
	Data         []byte
}

// NamedValue is a piece of non-keyed operator state.
type NamedValue struct {
	Name string
	Data []byte
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}
