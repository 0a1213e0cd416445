package checkpoint

// Object layout of a job in a store:
//
//	<job>/checkpoints/<id>.manifest      completed checkpoint id
//	<job>/data/<id>/<rest>               state written by checkpoint id
//	<job>/savepoints/<id>/manifest       completed savepoint id
//	<job>/savepoints/<id>/data/<rest>    state written by savepoint id
//
// <id> is the decimal id zero-padded to 20 digits (the width of the largest
// uint64), so that the lexical order in which stores list names is the
// numeric order of ids.
//
// Checkpoint data is named after the checkpoint that created it, and that
// name survives later checkpoints sharing the object (incremental state).
// Garbage collection relies on it: an object whose creating id is larger than
// the newest completed checkpoint may belong to a checkpoint still in progress
// and is never deleted. Savepoint data lives apart because savepoints are
// self-contained and owned by the user: collection never looks there.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// layoutIDWidth is the number of digits of a formatted id: len("18446744073709551615").
const layoutIDWidth = 20

// ValidJobName reports whether job can name a job: a single ValidName
// segment, since it is the first segment of every object of the job.
func ValidJobName(job string) error {
	if job == "" {
		return errors.New("empty job name")
	}
	if strings.Contains(job, "/") {
		return fmt.Errorf("job name %q: must be a single path segment (no '/')", job)
	}
	if err := ValidName(job); err != nil {
		return fmt.Errorf("job name %q: %w", job, err)
	}
	return nil
}

func layoutFormatID(id uint64) string { return fmt.Sprintf("%0*d", layoutIDWidth, id) }

// layoutParseID parses exactly layoutIDWidth decimal digits.
func layoutParseID(s string) (uint64, bool) {
	if len(s) != layoutIDWidth {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil { // overflow: "99999999999999999999"
		return 0, false
	}
	return id, true
}

func checkpointsPrefix(job string) string { return job + "/checkpoints/" }
func dataPrefix(job string) string        { return job + "/data/" }
func savepointsPrefix(job string) string  { return job + "/savepoints/" }

const (
	manifestSuffix          = ".manifest"
	savepointManifestSuffix = "/manifest"
)

// ManifestName is the name of the manifest of checkpoint id of job.
// job must be valid (ValidJobName).
func ManifestName(job string, id uint64) string {
	return checkpointsPrefix(job) + layoutFormatID(id) + manifestSuffix
}

// DataName is the name of the object rest written by checkpoint id of job.
// rest is one or more ValidName segments.
func DataName(job string, id uint64, rest string) string {
	return dataPrefix(job) + layoutFormatID(id) + "/" + rest
}

// ParseDataID returns the id of the checkpoint that created the data object
// name of job, and false when name is not exactly of the form DataName makes.
func ParseDataID(job, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, dataPrefix(job))
	if !ok || len(rest) < layoutIDWidth+2 || rest[layoutIDWidth] != '/' {
		return 0, false
	}
	return layoutParseID(rest[:layoutIDWidth])
}

// SavepointManifestName is the name of the manifest of savepoint id of job.
func SavepointManifestName(job string, id uint64) string {
	return savepointsPrefix(job) + layoutFormatID(id) + savepointManifestSuffix
}

// SavepointDataName is the name of the object rest written by savepoint id
// of job.
func SavepointDataName(job string, id uint64, rest string) string {
	return savepointsPrefix(job) + layoutFormatID(id) + "/data/" + rest
}

// ObjectName is the name of the data object rest written by the checkpoint or
// savepoint id of job. It panics on an unknown kind: writing savepoint data
// where collection sweeps, or the reverse, would be a bug, not an error.
func ObjectName(job string, kind Kind, id uint64, rest string) string {
	switch kind {
	case KindCheckpoint:
		return DataName(job, id, rest)
	case KindSavepoint:
		return SavepointDataName(job, id, rest)
	}
	panic("checkpoint: ObjectName of unknown kind " + kind.String())
}

// manifestObjectName is where the manifest of a checkpoint or savepoint
// lives; "" for an unknown kind.
func manifestObjectName(job string, kind Kind, id uint64) string {
	switch kind {
	case KindCheckpoint:
		return ManifestName(job, id)
	case KindSavepoint:
		return SavepointManifestName(job, id)
	}
	return ""
}

// parseManifestName returns the id of the checkpoint manifest name of job,
// and false for any other name.
func parseManifestName(job, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, checkpointsPrefix(job))
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, manifestSuffix)
	if !ok {
		return 0, false
	}
	return layoutParseID(digits)
}

// parseSavepointManifestName returns the id of the savepoint manifest name of
// job, and false for any other name (savepoint data included).
func parseSavepointManifestName(job, name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, savepointsPrefix(job))
	if !ok {
		return 0, false
	}
	digits, ok := strings.CutSuffix(rest, savepointManifestSuffix)
	if !ok {
		return 0, false
	}
	return layoutParseID(digits)
}
