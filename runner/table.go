package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// tableVersion is the format of jobs.json; a runner refuses a newer one
// rather than dropping fields it does not know.
const tableVersion = 1

type table struct {
	Version int    `json:"version"`
	NextID  int    `json:"next_id"`
	Jobs    []*Job `json:"jobs"`
}

// loadTable reads the job table, or returns an empty one when there is none.
func loadTable(path string) (*table, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &table{Version: tableVersion, NextID: 1}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read job table: %w", err)
	}
	var t table
	if err := json.Unmarshal(data, &t); err != nil {
		return nil, fmt.Errorf("job table %s is corrupt: %w", path, err)
	}
	if t.Version != tableVersion {
		return nil, fmt.Errorf("job table %s has version %d; this runner reads version %d", path, t.Version, tableVersion)
	}
	if t.NextID < 1 {
		t.NextID = 1
	}
	return &t, nil
}

// saveTable replaces the job table atomically and durably: a reader (the
// next runner, after a crash at any point) sees the old or the new table,
// never a torn one.
func saveTable(path string, t *table) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode job table: %w", err)
	}
	return writeFileAtomic(path, data, 0o600)
}

// writeFileAtomic writes a temporary file, fsyncs it, renames it over path
// and fsyncs the directory so that the rename itself survives a crash.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename there is nothing to remove
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
