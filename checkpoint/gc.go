package checkpoint

// Retention and garbage collection.
//
// Retain may be killed between any two store operations and leave the store
// consistent, because of the order of its steps:
//
//  1. Mark: read every manifest that stays (the newest keep checkpoints and
//     every savepoint) and collect the objects they reference. Any manifest
//     that cannot be read aborts here, before anything is deleted: deleting
//     on incomplete knowledge could remove state a checkpoint needs, and
//     deleting older manifests while the newest is unreadable would take away
//     the operator's explicit fallback.
//  2. Delete the manifests of older checkpoints, oldest first. From the first
//     delete on, those checkpoints no longer exist; the data they referenced
//     is now garbage or shared with a retained checkpoint.
//  3. Sweep: delete every object under <job>/data/ that no retained manifest
//     references and whose creating checkpoint is not newer than the newest
//     completed one. Sweeping starts only once every older manifest is gone,
//     so no manifest in the store ever references a deleted object.
//
// Objects of a checkpoint still in progress carry its id, which is larger than
// the newest completed id, so they survive. Objects it shares with earlier
// checkpoints survive as long as state backends keep this contract:
//
//	A snapshot may reference an object created by an earlier checkpoint only
//	if the subtask's previous snapshot referenced it too.
//
// (Incremental Pebble snapshots keep it naturally: an SST file lives in one
// contiguous stretch of time.) Then such an object is referenced by the newest
// completed checkpoint, which is always retained. Savepoint objects live
// outside <job>/data/ and are never deleted here.

import (
	"context"
	"fmt"
)

// Report says what Retain deleted. On error it counts what was deleted before
// the failure.
type Report struct {
	// Retained are the ids of the checkpoints kept, oldest first. It is
	// decided before anything is deleted, and set even on error.
	Retained []uint64
	// Manifests is the number of checkpoint manifests deleted.
	Manifests int
	// Objects is the number of data objects deleted.
	Objects int
	// Bytes is the total size of the deleted objects whose size a deleted
	// manifest recorded; UnsizedObjects counts the others (left over by an
	// aborted checkpoint or by an interrupted earlier run).
	Bytes          int64
	UnsizedObjects int
}

// Retain keeps the newest keep completed checkpoints of job, deletes the
// manifests of the others, and deletes the data objects that no remaining
// checkpoint or savepoint references (see the top of this file for why each
// step is safe to interrupt). keep must be at least 1.
func Retain(ctx context.Context, s Store, job string, keep int) (Report, error) {
	var rep Report
	if keep < 1 {
		return rep, fmt.Errorf("retain checkpoints of job %q: keep %d < 1 (the newest checkpoint is what the job restarts from)", job, keep)
	}
	ids, err := ListCheckpoints(ctx, s, job)
	if err != nil {
		return rep, fmt.Errorf("retain checkpoints of job %q: %w", job, err)
	}
	if len(ids) == 0 {
		// Without a completed checkpoint nothing tells in-progress data
		// from garbage: keep everything.
		return rep, nil
	}
	newest := ids[len(ids)-1]
	doomed, kept := ids[:max(0, len(ids)-keep)], ids[max(0, len(ids)-keep):]
	rep.Retained = kept

	live, err := gcMark(ctx, s, job, kept)
	if err != nil {
		return rep, fmt.Errorf("retain checkpoints of job %q: mark (nothing deleted): %w", job, err)
	}
	// Sizes only feed the report, so a doomed manifest that cannot be read
	// is no reason to stop: it is about to be deleted anyway.
	sizes := map[string]int64{}
	for _, id := range doomed {
		if m, err := ReadManifest(ctx, s, ManifestName(job, id)); err == nil {
			for _, h := range m.Handles() {
				sizes[h.Name] = h.Size
			}
		}
	}

	for _, id := range doomed {
		name := ManifestName(job, id)
		if err := s.Delete(ctx, name); err != nil {
			return rep, fmt.Errorf("retain checkpoints of job %q: delete manifest %s in %s: %w", job, name, s, err)
		}
		rep.Manifests++
	}

	if err := gcSweep(ctx, s, job, newest, live, sizes, &rep); err != nil {
		return rep, fmt.Errorf("retain checkpoints of job %q: sweep: %w", job, err)
	}
	return rep, nil
}

// gcMark returns the names of the objects referenced by the retained
// checkpoints and by every savepoint of job. It fails if any of those
// manifests cannot be read.
func gcMark(ctx context.Context, s Store, job string, kept []uint64) (map[string]struct{}, error) {
	savepoints, err := ListSavepoints(ctx, s, job)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(kept)+len(savepoints))
	for _, id := range kept {
		names = append(names, ManifestName(job, id))
	}
	for _, id := range savepoints {
		names = append(names, SavepointManifestName(job, id))
	}
	live := map[string]struct{}{}
	for _, name := range names {
		m, err := ReadManifest(ctx, s, name)
		if err != nil {
			return nil, err
		}
		for _, h := range m.Handles() {
			live[h.Name] = struct{}{}
		}
	}
	return live, nil
}

// gcSweep deletes the unreferenced data objects of job created by checkpoints
// up to newest. Names under <job>/data/ that ParseDataID does not recognise
// are left alone: what cannot be attributed to a checkpoint cannot be proven
// garbage.
func gcSweep(ctx context.Context, s Store, job string, newest uint64, live map[string]struct{}, sizes map[string]int64, rep *Report) error {
	names, err := s.List(ctx, dataPrefix(job))
	if err != nil {
		return fmt.Errorf("list %s in %s: %w", dataPrefix(job), s, err)
	}
	for _, name := range names {
		id, ok := ParseDataID(job, name)
		if !ok || id > newest {
			continue
		}
		if _, ok := live[name]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s.Delete(ctx, name); err != nil {
			return fmt.Errorf("delete %s in %s: %w", name, s, err)
		}
		rep.Objects++
		if size, ok := sizes[name]; ok {
			rep.Bytes += size
		} else {
			rep.UnsizedObjects++
		}
	}
	return nil
}
