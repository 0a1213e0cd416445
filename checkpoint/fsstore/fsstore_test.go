package fsstore_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/checkpoint/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) checkpoint.Store {
		dir := t.TempDir()
		s, err := fsstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		// Whatever the suite did, no temp file may outlive its operation.
		t.Cleanup(func() { assertNoTempFiles(t, dir) })
		return s
	})
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "~") {
			t.Errorf("temp file left behind: %s", p)
		}
		return nil
	})
}

// A crash between writing a temp file and renaming or linking it leaves the
// temp file behind; it must stay invisible and in nobody's way.
func TestStaleTempFilesIgnored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := fsstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.PutBytes(ctx, s, "job/chk-1/state", []byte("s")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"~tmp-123", "job/~tmp-456", "job/chk-1/~tmp-789"} {
		if err := os.WriteFile(filepath.Join(dir, p), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutIfAbsent(ctx, "job/chk-1/MANIFEST", []byte("m")); err != nil {
		t.Fatal(err)
	}
	names, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"job/chk-1/MANIFEST", "job/chk-1/state"}; !slices.Equal(names, want) {
		t.Fatalf("List = %q, want %q", names, want)
	}
	for _, n := range names {
		if err := s.Delete(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if names, err := s.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("List after deletes = %q, %v", names, err)
	}
}

// Deleting the last object of a checkpoint removes its emptied directories,
// so that garbage collection does not leave a directory per checkpoint.
func TestDeleteRemovesEmptyDirs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := fsstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.PutBytes(ctx, s, "job/chk-1/a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := checkpoint.PutBytes(ctx, s, "job/keep", []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "job/chk-1/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job", "chk-1")); !os.IsNotExist(err) {
		t.Fatalf("emptied directory still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "job", "keep")); err != nil {
		t.Fatalf("sibling object gone: %v", err)
	}
	// A directory is not an object: Get says not found, Delete is a no-op.
	if _, err := s.Get(ctx, "job"); err == nil {
		t.Fatal("Get of a directory succeeded")
	}
	if err := s.Delete(ctx, "job"); err != nil {
		t.Fatal(err)
	}
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	s, err := checkpoint.Open(context.Background(), "file://"+dir+"/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	if want := "file://" + dir + "/ckpt"; s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ckpt")); err != nil || !fi.IsDir() {
		t.Fatalf("Open did not create the directory: %v", err)
	}
}

func TestOpenBadURLs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"file://":                  "empty path",
		"file:relative/dir":        `relative path "relative/dir"`,
		"file://relative/dir":      `host "relative" not allowed`,
		"file://localhost/var/x":   `host "localhost" not allowed`,
		"file:///var/x?sync=false": `query "sync=false" not allowed`,
		"file:///var/x#frag":       `fragment "frag" not allowed`,
		"file://u@/var/x":          "user info not allowed",
		"file://" + file:           "not a directory",
	} {
		_, err := checkpoint.Open(context.Background(), url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want error containing %q", url, err, want)
		}
	}
	if _, err := fsstore.Open("rel/dir"); err == nil || !strings.Contains(err.Error(), "relative") {
		t.Errorf("Open(rel/dir) = %v, want relative-path error", err)
	}
}
