package checkpoint

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrNotFound is returned (wrapped) by Store.Get when the object does not exist.
var ErrNotFound = errors.New("object not found")

// ErrExists is returned (wrapped) by Store.PutIfAbsent when the object already
// exists. For a manifest it means another incarnation of the job completed the
// same checkpoint id: the caller must not treat its own checkpoint as complete.
var ErrExists = errors.New("object already exists")

// Store is the durable home of checkpoints: state files and manifests.
//
// Names are relative, slash-separated paths (see ValidName). Implementations
// make every written object visible only once it is complete, so a reader
// never observes a half-written object, and they are safe for concurrent use.
// All implementations pass checkpoint/storetest.
type Store interface {
	// Put writes name, replacing any previous content. size is the exact
	// number of bytes r yields, or -1 when unknown.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// PutIfAbsent atomically creates name with data, or fails with ErrExists
	// when it exists already. Manifests are written with it so that two
	// incarnations of a job can never both complete checkpoint n.
	PutIfAbsent(ctx context.Context, name string, data []byte) error
	// Get opens name for reading; ErrNotFound when it does not exist.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the names that start with prefix, in lexical order.
	List(ctx context.Context, prefix string) ([]string, error)
	// Delete removes name. Deleting an absent object is not an error.
	Delete(ctx context.Context, name string) error
	// String names the store in error messages, like "file:///var/ckpt" or
	// "s3://bucket/prefix".
	String() string
}

// PutBytes writes data under name.
func PutBytes(ctx context.Context, s Store, name string, data []byte) error {
	return s.Put(ctx, name, bytes.NewReader(data), int64(len(data)))
}

// GetBytes reads the whole object name.
func GetBytes(ctx context.Context, s Store, name string) ([]byte, error) {
	rc, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", name, s, err)
	}
	return data, nil
}

// ValidName reports whether name can be used as an object name in every
// store: non-empty, relative, slash-separated segments of [A-Za-z0-9._-],
// no empty, "." or ".." segment.
func ValidName(name string) error {
	if name == "" {
		return errors.New("empty object name")
	}
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("object name %q: empty, '.' or '..' path segment", name)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
				return fmt.Errorf("object name %q: character %q not allowed (use A-Z a-z 0-9 . _ -)", name, c)
			}
		}
	}
	return nil
}
