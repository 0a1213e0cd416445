// Package memstore is an in-memory checkpoint.Store: for unit tests of pure
// logic and for jobs run without durability. Nothing survives the process.
//
// Importing it registers the "mem" URL scheme: mem://name opens the store
// called name, and every Open of the same name in one process returns the
// same store, so that a job restarted in-process finds its checkpoints.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/onceflow/onceflow/checkpoint"
)

func init() {
	checkpoint.Register("mem", openURL)
}

var (
	namedMu sync.Mutex
	named   = map[string]*Store{}
	anonSeq atomic.Uint64
)

// Store is an in-memory store, safe for concurrent use.
type Store struct {
	name string

	mu sync.RWMutex
	// objects holds immutable slices: Put replaces an entry, never writes
	// into one, so Get can hand out readers without copying or locking.
	objects map[string][]byte
}

// New returns a fresh, empty store that is not reachable through any URL.
func New() *Store {
	return newStore(fmt.Sprintf("mem://anonymous-%d", anonSeq.Add(1)))
}

// Named returns the process-wide store called name, creating it on first use.
func Named(name string) *Store {
	namedMu.Lock()
	defer namedMu.Unlock()
	s, ok := named[name]
	if !ok {
		s = newStore("mem://" + name)
		named[name] = s
	}
	return s
}

func newStore(name string) *Store {
	return &Store{name: name, objects: map[string][]byte{}}
}

func openURL(_ context.Context, u *url.URL) (checkpoint.Store, error) {
	switch {
	case u.Opaque != "":
		return nil, fmt.Errorf("mem store: want mem://name, got opaque %q", u.Opaque)
	case u.Host == "":
		return nil, fmt.Errorf("mem store: missing store name (want mem://name)")
	case u.User != nil || u.Port() != "":
		return nil, fmt.Errorf("mem store: name %q must be a plain name (want mem://name)", u.Host)
	case u.Path != "" && u.Path != "/":
		return nil, fmt.Errorf("mem store: unexpected path %q (want mem://name)", u.Path)
	case u.RawQuery != "" || u.Fragment != "":
		return nil, fmt.Errorf("mem store: mem://%s takes no query or fragment", u.Host)
	}
	return Named(u.Host), nil
}

func (s *Store) String() string { return s.name }

// check runs the preconditions every operation shares, so that a canceled
// context or a bad name fails the same way in every method.
func (s *Store) check(ctx context.Context, op, name string) error {
	if err := checkpoint.ValidName(name); err != nil {
		return fmt.Errorf("%s: %s %q: %w", s, op, name, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
	}
	return nil
}

func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := s.check(ctx, "put", name); err != nil {
		return err
	}
	// Read everything before publishing, so a failed or canceled stream
	// leaves the previous version (or nothing) in place.
	data, err := io.ReadAll(ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("%s: put %s: read body: %w", s, name, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("%s: put %s: body has %d bytes, caller said %d", s, name, len(data), size)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: put %s: %w", s, name, err)
	}
	s.mu.Lock()
	s.objects[name] = data
	s.mu.Unlock()
	return nil
}

func (s *Store) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if err := s.check(ctx, "put-if-absent", name); err != nil {
		return err
	}
	data = bytes.Clone(data) // the caller may reuse its buffer
	if data == nil {
		data = []byte{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.objects[name]; ok {
		return fmt.Errorf("%s: put-if-absent %s: %w", s, name, checkpoint.ErrExists)
	}
	s.objects[name] = data
	return nil
}

func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := s.check(ctx, "get", name); err != nil {
		return nil, err
	}
	s.mu.RLock()
	data, ok := s.objects[name]
	s.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: get %s: %w", s, name, checkpoint.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: list %q: %w", s, prefix, err)
	}
	s.mu.RLock()
	var names []string
	for name := range s.objects {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	s.mu.RUnlock()
	sort.Strings(names)
	return names, nil
}

func (s *Store) Delete(ctx context.Context, name string) error {
	if err := s.check(ctx, "delete", name); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.objects, name)
	s.mu.Unlock()
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
