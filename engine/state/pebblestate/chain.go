package pebblestate

import (
	"strings"

	"github.com/onceflow/onceflow/checkpoint"
)

// chainState is what the next snapshot is built from: the newest base whose
// upload succeeded (or that was restored), the changelog segments written
// since, and which objects in the store a snapshot may reference without
// uploading them again. Guarded by backend.cmu.
//
// Reuse follows the garbage collection contract of the checkpoint package:
// a snapshot may reference an object created by an earlier checkpoint only
// if this subtask's previous snapshot referenced it too. reusable is exactly
// that set: after a successful upload, the objects the snapshot referenced;
// after a failed one, the previous set plus the objects the failed upload
// created (their checkpoint never completes, so no completed checkpoint can
// be missing them). Savepoint objects are never reusable: savepoints are
// self-contained and owned by the user.
type chainState struct {
	baseID uint64 // checkpoint whose Pebble checkpoint is the base
	base   []chainFile
	segs   []chainSeg // oldest first; ids > baseID
	// reusable holds object names (see above).
	reusable map[string]bool
	// sstHandles maps immutable base file names (Pebble never rewrites a
	// file number) to their objects, so that a materialization uploads only
	// the files the previous ones did not.
	sstHandles map[string]checkpoint.Handle
	// keep holds the object names of the last two successful snapshots,
	// whose local copies local recovery may use.
	keep [2]map[string]bool
}

// chainFile is a file of a base or a changelog segment.
type chainFile struct {
	name  string // in a base: the file's name in the Pebble directory
	obj   string // the name the backend gives its object (the engine prefixes it)
	local string // path of a local copy
	size  int64
	h     checkpoint.Handle // Name is empty until it is in the store
}

type chainSeg struct {
	id   uint64
	file chainFile
}

// immutable reports whether a Pebble file never changes once written, so
// that an uploaded copy can stand for it in later materializations.
// MANIFEST and OPTIONS files are rewritten or replaced and always uploaded.
func immutable(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}
