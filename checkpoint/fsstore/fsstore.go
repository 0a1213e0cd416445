// Package fsstore is a checkpoint.Store in a local directory: the embedded
// default. Object "a/b" is the file DIR/a/b.
//
// Durability: every object is written to a temp file in its final directory,
// fsynced, then renamed (Put) or hard-linked (PutIfAbsent) onto its name, and
// the directory is fsynced, so that after a crash a name holds either a whole
// object or nothing. Temp file names contain '~', a character ValidName
// never allows, so List can tell them (and stale ones left by a crash) from
// objects.
//
// Importing it registers the "file" URL scheme: file:///absolute/path.
package fsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/onceflow/onceflow/checkpoint"
)

func init() {
	checkpoint.Register("file", openURL)
}

// tempPrefix starts every temp file name. '~' is outside ValidName's
// alphabet, so no object can ever be mistaken for a temp file or vice versa.
const tempPrefix = "~tmp-"

// Store is a directory-backed store, safe for concurrent use by goroutines
// and by processes sharing the directory.
type Store struct {
	root string // absolute, cleaned
}

// Open opens the store in dir, creating the directory if needed.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("file store: empty directory path")
	}
	if !filepath.IsAbs(dir) {
		return nil, fmt.Errorf("file store: directory %q is relative; an absolute path is required so the store does not depend on the working directory", dir)
	}
	root := filepath.Clean(dir)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("file store: create directory %s: %w", root, err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, fmt.Errorf("file store: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("file store: %s is not a directory", root)
	}
	return &Store{root: root}, nil
}

func openURL(_ context.Context, u *url.URL) (checkpoint.Store, error) {
	switch {
	case u.Opaque != "":
		return nil, fmt.Errorf("file store: relative path %q not allowed (want file:///absolute/path)", u.Opaque)
	case u.Host != "":
		return nil, fmt.Errorf("file store: host %q not allowed (want file:///absolute/path, with three slashes)", u.Host)
	case u.User != nil:
		return nil, errors.New("file store: user info not allowed (want file:///absolute/path)")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("file store: query %q not allowed (want file:///absolute/path)", u.RawQuery)
	case u.Fragment != "":
		return nil, fmt.Errorf("file store: fragment %q not allowed (want file:///absolute/path)", u.Fragment)
	case u.Path == "":
		return nil, errors.New("file store: empty path (want file:///absolute/path)")
	}
	return Open(filepath.FromSlash(u.Path))
}

func (s *Store) String() string { return "file://" + filepath.ToSlash(s.root) }

// Dir returns the directory the store lives in.
func (s *Store) Dir() string { return s.root }

func (s *Store) errf(op, name string, err error) error {
	return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
}

// path validates name and the context, then maps name to its file.
func (s *Store) path(ctx context.Context, op, name string) (string, error) {
	if err := checkpoint.ValidName(name); err != nil {
		return "", fmt.Errorf("%s: %s %q: %w", s, op, name, err)
	}
	if err := ctx.Err(); err != nil {
		return "", s.errf(op, name, err)
	}
	return filepath.Join(s.root, filepath.FromSlash(name)), nil
}

func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	p, err := s.path(ctx, "put", name)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(ctx, p, r, size)
	if err != nil {
		return s.errf("put", name, err)
	}
	if err := ctx.Err(); err != nil {
		os.Remove(tmp)
		return s.errf("put", name, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return s.errf("put", name, fmt.Errorf("rename temp file: %w", err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return s.errf("put", name, err)
	}
	return nil
}

// PutIfAbsent links a complete, fsynced temp file onto the name. link(2)
// fails with EEXIST when the name exists, atomically against concurrent
// creators in any process, and the name never points at partial content.
func (s *Store) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	p, err := s.path(ctx, "put-if-absent", name)
	if err != nil {
		return err
	}
	tmp, err := s.writeTemp(ctx, p, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return s.errf("put-if-absent", name, err)
	}
	// The temp file is only a staging name; the object lives on under p.
	defer os.Remove(tmp)
	if err := ctx.Err(); err != nil {
		return s.errf("put-if-absent", name, err)
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return s.errf("put-if-absent", name, checkpoint.ErrExists)
		}
		return s.errf("put-if-absent", name, fmt.Errorf("link temp file: %w", err))
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return s.errf("put-if-absent", name, err)
	}
	return nil
}

// writeTemp writes r to a new temp file next to p and fsyncs it. It returns
// the temp file's path; on error nothing is left behind.
func (s *Store) writeTemp(ctx context.Context, p string, r io.Reader, size int64) (tmp string, err error) {
	dir := filepath.Dir(p)
	f, err := s.createTemp(dir)
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err != nil {
		return "", fmt.Errorf("write temp file: %w", err)
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("body has %d bytes, caller said %d", n, size)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("fsync temp file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("close temp file: %w", err)
	}
	return f.Name(), nil
}

// createTemp creates a temp file in dir, creating dir (durably) if needed.
// A concurrent Delete may remove dir once empty, between our MkdirAll and
// CreateTemp, so a vanished directory is retried a few times.
func (s *Store) createTemp(dir string) (*os.File, error) {
	for attempt := 0; ; attempt++ {
		f, err := os.CreateTemp(dir, tempPrefix+"*")
		if err == nil || !errors.Is(err, fs.ErrNotExist) || attempt == 5 {
			if err != nil {
				return nil, fmt.Errorf("create temp file: %w", err)
			}
			return f, nil
		}
		if err := s.mkdirs(dir); err != nil {
			return nil, err
		}
	}
}

// mkdirs creates dir and its missing parents below the root, fsyncing each
// parent so that the new directory entries survive a crash along with the
// objects renamed into them.
func (s *Store) mkdirs(dir string) error {
	var created []string
	for d := dir; len(d) > len(s.root); d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		created = append(created, d)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	for _, d := range created {
		if err := syncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	p, err := s.path(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		// ENOTDIR: a parent of name is an object, so name is not one.
		if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
			return nil, s.errf("get", name, checkpoint.ErrNotFound)
		}
		return nil, s.errf("get", name, err)
	}
	if fi, err := f.Stat(); err != nil {
		f.Close()
		return nil, s.errf("get", name, err)
	} else if fi.IsDir() { // a directory holds objects but is not one
		f.Close()
		return nil, s.errf("get", name, checkpoint.ErrNotFound)
	}
	return f, nil
}

func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: list %q: %w", s, prefix, err)
	}
	// Walk only the directory the prefix pins down. A valid name with this
	// prefix has that directory as whole leading segments, so an invalid one
	// (like "../") matches nothing and must not be walked.
	start := s.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		if checkpoint.ValidName(prefix[:i]) != nil {
			return nil, nil
		}
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var names []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Concurrent Deletes remove emptied directories while we walk.
			if errors.Is(err, fs.ErrNotExist) || isNotDir(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		// Temp files and anything else that is not a valid name are not
		// objects.
		if strings.HasPrefix(name, prefix) && checkpoint.ValidName(name) == nil {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: list %q: %w", s, prefix, err)
	}
	// Directory order is not lexical order of full names ("a-b" < "a/x").
	sort.Strings(names)
	return names, nil
}

func (s *Store) Delete(ctx context.Context, name string) error {
	p, err := s.path(ctx, "delete", name)
	if err != nil {
		return err
	}
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) || isNotDir(err) || err == nil && fi.IsDir() {
		return nil // not an object: deleting it is a no-op
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.errf("delete", name, err)
	}
	// Remove emptied parents so that garbage-collected checkpoints leave no
	// directories behind. os.Remove fails on a non-empty directory, which
	// ends the climb; a racing Put recreates what it needs (see createTemp).
	for d := filepath.Dir(p); len(d) > len(s.root); d = filepath.Dir(d) {
		if os.Remove(d) != nil {
			break
		}
	}
	return nil
}

// isNotDir reports ENOTDIR: a path goes through an object as if it were a
// directory (name "a/b" when "a" is an object), so it names no object.
func isNotDir(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory for fsync: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}

// ctxReader stops a long copy once the context is canceled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
