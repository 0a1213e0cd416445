package checkpoint

// The catalog finds, reads and writes the manifests of a job in a store.
//
// The central rule is in LatestCheckpoint: a job restarts from its newest
// completed checkpoint or not at all. Sinks commit their transactions once a
// checkpoint completes, so output committed for the newest checkpoint may
// already be visible; restarting from an older one would replay the inputs in
// between and commit that output a second time.

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
)

// maxManifestSize bounds what ReadManifest reads and PutManifest writes, so
// that a stray huge object under a manifest name cannot exhaust memory. It is
// far above any real manifest (handles are ~100 bytes each).
//
// (PutManifest is not called WriteManifest because that is the name of the
// coordinator effect it executes, in protocol.go.)
const maxManifestSize = 256 << 20

// ListCheckpoints returns the ids of the completed checkpoints of job,
// ascending. Names that are not exactly checkpoint manifest names (temporary
// files of a store, foreign objects) are ignored.
func ListCheckpoints(ctx context.Context, s Store, job string) ([]uint64, error) {
	return listManifests(ctx, s, job, checkpointsPrefix(job), parseManifestName)
}

// ListSavepoints returns the ids of the completed savepoints of job,
// ascending. Savepoint data objects are listed too (the Store interface has no
// delimiter) but skipped.
func ListSavepoints(ctx context.Context, s Store, job string) ([]uint64, error) {
	return listManifests(ctx, s, job, savepointsPrefix(job), parseSavepointManifestName)
}

func listManifests(ctx context.Context, s Store, job, prefix string, parse func(job, name string) (uint64, bool)) ([]uint64, error) {
	if err := ValidJobName(job); err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", prefix, s, err)
	}
	names, err := s.List(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list %s in %s: %w", prefix, s, err)
	}
	var ids []uint64
	for _, name := range names {
		if id, ok := parse(job, name); ok {
			ids = append(ids, id)
		}
	}
	// Names sort like ids, but a store's order is not worth trusting here.
	slices.Sort(ids)
	return ids, nil
}

// ReadManifest reads and decodes the manifest stored under name, and checks
// that it describes the checkpoint or savepoint that belongs at that name (a
// manifest copied or renamed by hand would otherwise restore the wrong
// state). Errors name the store and the object; a manifest that cannot be
// trusted wraps ErrCorrupt, a missing one ErrNotFound.
func ReadManifest(ctx context.Context, s Store, name string) (*Manifest, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read manifest %s in %s: %w", name, s, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("read manifest %s in %s: %w", name, s, err)
	}
	if len(data) > maxManifestSize {
		return nil, fmt.Errorf("read manifest %s in %s: %w: larger than %d bytes", name, s, ErrCorrupt, maxManifestSize)
	}
	m, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("decode manifest %s in %s: %w", name, s, err)
	}
	if want := manifestObjectName(m.Job, m.Kind, m.ID); want != name {
		return nil, fmt.Errorf("manifest %s in %s: %w: it describes %s %d of job %q, whose manifest is %s",
			name, s, ErrCorrupt, m.Kind, m.ID, m.Job, want)
	}
	return m, nil
}

// PutManifest validates and encodes m and creates it at its name with
// PutIfAbsent, completing the checkpoint. It returns the name even on error.
// When the manifest exists already the error wraps ErrExists: another
// incarnation of the job completed this id, and the caller must not treat its
// own checkpoint as complete.
func PutManifest(ctx context.Context, s Store, m *Manifest) (string, error) {
	data, err := EncodeManifest(m)
	if err != nil {
		return "", fmt.Errorf("write manifest to %s: %w", s, err)
	}
	name := manifestObjectName(m.Job, m.Kind, m.ID)
	if len(data) > maxManifestSize {
		return name, fmt.Errorf("write manifest %s to %s: %d bytes, more than the %d that can be read back",
			name, s, len(data), maxManifestSize)
	}
	if err := s.PutIfAbsent(ctx, name, data); err != nil {
		return name, fmt.Errorf("write manifest %s to %s: %w", name, s, err)
	}
	return name, nil
}

// LatestCheckpoint returns the manifest of the newest completed checkpoint or
// savepoint of job, the one it must restart from, or (nil, nil) when it has
// none. Savepoints count because they share the id sequence and sinks commit
// on their completion as on a checkpoint's (NotifyComplete): restarting from
// a checkpoint older than a completed savepoint would commit the savepoint's
// output a second time.
//
// When the newest manifest cannot be read or decoded it fails, and never
// falls back to an older one on its own: output committed for the newest may
// already be visible, and replaying from an older one would commit it again.
// The operator can restore an older checkpoint explicitly.
func LatestCheckpoint(ctx context.Context, s Store, job string) (*Manifest, error) {
	cps, err := ListCheckpoints(ctx, s, job)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint of job %q: %w", job, err)
	}
	sps, err := ListSavepoints(ctx, s, job)
	if err != nil {
		return nil, fmt.Errorf("latest checkpoint of job %q: %w", job, err)
	}
	var name string
	var id uint64
	var kind Kind
	if len(cps) > 0 {
		id, kind, name = cps[len(cps)-1], KindCheckpoint, ManifestName(job, cps[len(cps)-1])
	}
	if len(sps) > 0 {
		spID := sps[len(sps)-1]
		if spID == id && name != "" {
			return nil, fmt.Errorf("latest checkpoint of job %q: %w: both %s and %s exist, and one id is one snapshot",
				job, ErrCorrupt, name, SavepointManifestName(job, spID))
		}
		if name == "" || spID > id {
			id, kind, name = spID, KindSavepoint, SavepointManifestName(job, spID)
		}
	}
	if name == "" {
		return nil, nil
	}
	m, err := ReadManifest(ctx, s, name)
	if err != nil {
		return nil, fmt.Errorf("latest %s %d of job %q cannot be restored, so the job refuses to start: %w "+
			"(falling back to an older checkpoint could duplicate output already committed for %s %d; "+
			"restore an older checkpoint explicitly if that is acceptable)", kind, id, job, err, kind, id)
	}
	return m, nil
}

// VerifyHandles checks that every object m references exists with the
// recorded size and CRC-32C. It reads each distinct object once, so it costs
// a full download of the checkpoint; it stops at the first failure, which
// names the checkpoint and the object and wraps ErrNotFound or ErrCorrupt.
func VerifyHandles(ctx context.Context, s Store, m *Manifest) error {
	seen := map[string]bool{}
	for _, h := range m.Handles() {
		if seen[h.Name] {
			continue
		}
		seen[h.Name] = true
		if err := verifyObject(ctx, s, h); err != nil {
			return fmt.Errorf("verify %s %d of job %q: object %s in %s: %w", m.Kind, m.ID, m.Job, h.Name, s, err)
		}
	}
	return nil
}

func verifyObject(ctx context.Context, s Store, h Handle) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rc, err := s.Get(ctx, h.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	sum := crc32.New(manifestCRCTable)
	// Read one byte past the recorded size: enough to tell "too long"
	// without downloading an object that is far too long.
	n, err := io.Copy(sum, io.LimitReader(rc, h.Size+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	switch {
	case n > h.Size:
		return fmt.Errorf("%w: larger than the %d bytes recorded", ErrCorrupt, h.Size)
	case n < h.Size:
		return fmt.Errorf("%w: %d bytes, %d recorded", ErrCorrupt, n, h.Size)
	case sum.Sum32() != h.CRC32C:
		return fmt.Errorf("%w: crc32c %08x, %08x recorded", ErrCorrupt, sum.Sum32(), h.CRC32C)
	}
	return nil
}
