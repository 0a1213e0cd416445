package runner

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	_ "github.com/onceflow/onceflow/checkpoint/fsstore" // file:// stores
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// stores
)

// Every runner job has its own checkpoint store, <root>/<job id>: its
// "latest" checkpoint is then always its own, even when two jobs run the
// same binary (and so the same engine job name). Restoring another job's
// savepoint copies it into the job's store first.

// jobStoreURL appends the job id to the path of a store root URL.
func jobStoreURL(root, id string) (string, error) {
	u, err := url.Parse(root)
	if err != nil {
		return "", fmt.Errorf("checkpoint root %q: %w", root, err)
	}
	if u.Scheme == "" {
		return "", fmt.Errorf("checkpoint root %q: want a URL such as file:///abs/dir or s3://bucket/prefix", root)
	}
	u.Path = path.Join("/", u.Path, id) // s3://bucket/prefix: the bucket is the host
	return u.String(), nil
}

// ErrOutsideStore marks a restore path that does not name a checkpoint or
// savepoint manifest in a job's store.
var ErrOutsideStore = errors.New("not a checkpoint or savepoint in the runner's stores")

// parsedPoint is a validated restore point path.
type parsedPoint struct {
	job       string // runner job id
	engineJob string
	manifest  string
	kind      checkpoint.Kind
	id        uint64
}

// parsePointPath validates "<job id>/<manifest name>" (see RestorePoint).
// Nothing else is accepted (no absolute paths, no "..", no data objects), so
// a path can never reach outside a job's store.
func parsePointPath(p string) (parsedPoint, error) {
	jobID, manifest, ok := strings.Cut(p, "/")
	if !ok || !validJobID(jobID) {
		return parsedPoint{}, fmt.Errorf("restore path %q: %w: want <job id>/<engine job>/checkpoints/<id>.manifest or <job id>/<engine job>/savepoints/<id>/manifest, as listed by `onceflow checkpoints`", p, ErrOutsideStore)
	}
	pp, err := parseManifest(manifest)
	if err != nil {
		return parsedPoint{}, fmt.Errorf("restore path %q: %w", p, err)
	}
	pp.job = jobID
	return pp, nil
}

// parseManifest validates a manifest name of a job's store.
func parseManifest(name string) (parsedPoint, error) {
	bad := fmt.Errorf("%q: %w: want <engine job>/checkpoints/<id>.manifest or <engine job>/savepoints/<id>/manifest", name, ErrOutsideStore)
	segs := strings.Split(name, "/")
	if len(segs) < 3 || checkpoint.ValidJobName(segs[0]) != nil {
		return parsedPoint{}, bad
	}
	eng := segs[0]
	digits := strings.TrimSuffix(segs[2], ".manifest")
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return parsedPoint{}, bad
	}
	// Accept exactly the names the layout makes.
	switch name {
	case checkpoint.ManifestName(eng, id):
		return parsedPoint{engineJob: eng, manifest: name, kind: checkpoint.KindCheckpoint, id: id}, nil
	case checkpoint.SavepointManifestName(eng, id):
		return parsedPoint{engineJob: eng, manifest: name, kind: checkpoint.KindSavepoint, id: id}, nil
	}
	return parsedPoint{}, bad
}

func validJobID(id string) bool {
	if len(id) < 2 || id[0] != 'j' {
		return false
	}
	_, err := strconv.ParseUint(id[1:], 10, 32)
	return err == nil
}

// engineJobs returns the engine job names that have objects in s.
func engineJobs(ctx context.Context, s checkpoint.Store) ([]string, error) {
	names, err := s.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s, err)
	}
	var jobs []string
	for _, n := range names {
		first, _, _ := strings.Cut(n, "/")
		if checkpoint.ValidJobName(first) == nil && !slices.Contains(jobs, first) {
			jobs = append(jobs, first)
		}
	}
	return jobs, nil
}

// listPoints returns the completed checkpoints and savepoints in the store of
// runner job jobID, oldest first.
func listPoints(ctx context.Context, s checkpoint.Store, jobID string) ([]RestorePoint, error) {
	engs, err := engineJobs(ctx, s)
	if err != nil {
		return nil, err
	}
	var out []RestorePoint
	for _, eng := range engs {
		for _, kind := range []checkpoint.Kind{checkpoint.KindCheckpoint, checkpoint.KindSavepoint} {
			list, name := checkpoint.ListCheckpoints, checkpoint.ManifestName
			if kind == checkpoint.KindSavepoint {
				list, name = checkpoint.ListSavepoints, checkpoint.SavepointManifestName
			}
			ids, err := list(ctx, s, eng)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				rp := RestorePoint{Job: jobID, EngineJob: eng, Kind: kind.String(), ID: id, Manifest: name(eng, id)}
				rp.Path = jobID + "/" + rp.Manifest
				m, err := checkpoint.ReadManifest(ctx, s, rp.Manifest)
				if errors.Is(err, checkpoint.ErrNotFound) {
					continue // deleted by retention since the listing
				}
				if err != nil {
					return nil, err
				}
				rp.CreatedAt = time.UnixMilli(m.CreatedUnixMilli).UTC()
				for _, h := range m.Handles() {
					rp.Bytes += h.Size
				}
				out = append(out, rp)
			}
		}
	}
	slices.SortFunc(out, func(a, b RestorePoint) int {
		if a.ID != b.ID {
			return cmpU64(a.ID, b.ID)
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// highestID is the highest checkpoint or savepoint id of eng in s (0: none).
func highestID(ctx context.Context, s checkpoint.Store, eng string) (uint64, error) {
	var high uint64
	for _, list := range []func(context.Context, checkpoint.Store, string) ([]uint64, error){checkpoint.ListCheckpoints, checkpoint.ListSavepoints} {
		ids, err := list(ctx, s, eng)
		if err != nil {
			return 0, err
		}
		if len(ids) > 0 {
			high = max(high, ids[len(ids)-1])
		}
	}
	return high, nil
}

// copyPoint copies a checkpoint or savepoint (every object its manifest
// references, then the manifest, so that a crash midway leaves no manifest
// pointing at missing objects) from one store to another.
func copyPoint(ctx context.Context, from, to checkpoint.Store, manifest string) error {
	m, err := checkpoint.ReadManifest(ctx, from, manifest)
	if err != nil {
		return fmt.Errorf("copy %s: %w", manifest, err)
	}
	seen := map[string]bool{}
	for _, h := range m.Handles() {
		if seen[h.Name] {
			continue
		}
		seen[h.Name] = true
		rc, err := from.Get(ctx, h.Name)
		if err != nil {
			return fmt.Errorf("copy %s: read %s: %w", manifest, h.Name, err)
		}
		err = to.Put(ctx, h.Name, rc, h.Size)
		rc.Close()
		if err != nil {
			return fmt.Errorf("copy %s: write %s to %s: %w", manifest, h.Name, to, err)
		}
	}
	data, err := checkpoint.GetBytes(ctx, from, manifest)
	if err != nil {
		return fmt.Errorf("copy %s: %w", manifest, err)
	}
	if err := to.PutIfAbsent(ctx, manifest, data); err != nil && !errors.Is(err, checkpoint.ErrExists) {
		return fmt.Errorf("copy %s to %s: %w", manifest, to, err)
	}
	return nil
}

// deleteSavepoint removes a savepoint: its manifest first, so that a
// deletion interrupted midway leaves unreferenced data, never a manifest
// whose data is gone.
func deleteSavepoint(ctx context.Context, s checkpoint.Store, pp parsedPoint) error {
	if err := s.Delete(ctx, pp.manifest); err != nil {
		return fmt.Errorf("delete %s: %w", pp.manifest, err)
	}
	prefix := strings.TrimSuffix(pp.manifest, "manifest")
	names, err := s.List(ctx, prefix)
	if err != nil {
		return fmt.Errorf("list %s: %w", prefix, err)
	}
	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil {
			return fmt.Errorf("delete %s: %w", n, err)
		}
	}
	return nil
}
