// Package state is the keyed state API of Onceflow: typed value, map, list and
// reducing state on top of a byte-level Backend. Backends (in-memory here,
// Pebble in pebblestate) differ only below the Backend interface, so operators
// never change when the backend does.
package state

import (
	"context"
	"io"

	"github.com/onceflow/onceflow/checkpoint"
)

// ID identifies a registered state within one backend.
type ID uint16

// Kind is the shape of a registered state; re-registering a name with another
// kind is an error (it would misread the stored bytes).
type Kind uint8

const (
	KindValue Kind = iota + 1
	KindMap
	KindList
)

func (k Kind) String() string {
	switch k {
	case KindValue:
		return "value"
	case KindMap:
		return "map"
	case KindList:
		return "list"
	}
	return "unknown"
}

// Backend holds the keyed state of one operator subtask. It is used by one
// goroutine only (the subtask's), so implementations need no locking except
// between the record path and an asynchronous snapshot upload.
//
// Every access is scoped to the current key set by SetCurrentKey. Value state
// uses an empty user key; map state uses the map key.
type Backend interface {
	// Register returns the ID of the named state, creating it on first use.
	Register(name string, kind Kind) (ID, error)
	// SetCurrentKey scopes the following accesses to key, in key group kg.
	// The backend may retain key only until the next SetCurrentKey.
	SetCurrentKey(kg int, key []byte)
	// Get returns the value of (state, current key, userKey). The returned
	// slice is valid until the next call into the backend.
	Get(id ID, userKey []byte) (value []byte, ok bool, err error)
	// Put stores a copy of value.
	Put(id ID, userKey, value []byte) error
	// Delete removes (state, current key, userKey); absent is not an error.
	Delete(id ID, userKey []byte) error
	// Scan calls fn for every user key of state under the current key, in
	// user key order. The slices are valid only during the call.
	Scan(id ID, fn func(userKey, value []byte) error) error
	// Snapshot captures a consistent view of all state for checkpoint id (the
	// synchronous part, on the record path: must be cheap) and returns the
	// asynchronous part that uploads it.
	Snapshot(id uint64) (PendingSnapshot, error)
	// Close releases the backend's resources.
	Close() error
}

// Prefetcher is an optional part of a Backend whose state outgrows the CPU
// caches. Before processing a batch of records the engine announces, in
// order, the keys it will make current (keys[i] in key group kgs[i]), so
// that the backend can start the memory loads their accesses need: the
// loads of a batch then overlap instead of each record waiting for its own.
// The slices are valid only during the call.
type Prefetcher interface {
	Prefetch(kgs []int, keys [][]byte)
}

// PendingSnapshot is the asynchronous part of a snapshot. Upload runs on
// another goroutine while the subtask goes on processing records.
type PendingSnapshot interface {
	Upload(ctx context.Context, to Uploader) ([]checkpoint.Handle, error)
}

// Uploader writes objects for one subtask's snapshot. The engine chooses the
// object names (under the checkpoint's data prefix) and records size and
// checksum in the returned handle.
type Uploader interface {
	Upload(ctx context.Context, name string, r io.Reader, size int64) (checkpoint.Handle, error)
}

// Downloader reads objects referenced by the handles of a checkpoint.
type Downloader interface {
	// Open returns the object's content after verifying it against the
	// handle's size and checksum, or an error naming the object.
	Open(ctx context.Context, h checkpoint.Handle) (io.ReadCloser, error)
}

// SubtaskInfo tells a backend which subtask it serves.
type SubtaskInfo struct {
	Job            string
	Operator       string
	Subtask        int
	Parallelism    int
	MaxParallelism int
	// KeyGroups owned by this subtask.
	KeyGroups checkpoint.KeyGroupRange
}

// Factory creates a backend for a subtask and restores it from the handles of
// a checkpoint (nil for a fresh start). Handles may cover key groups beyond
// info.KeyGroups (after rescaling): the backend keeps only its own.
type Factory interface {
	New(ctx context.Context, info SubtaskInfo, restore []checkpoint.Handle, from Downloader) (Backend, error)
}
