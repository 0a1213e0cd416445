// Package s3store is a checkpoint.Store on S3 or any S3-compatible server
// (MinIO), built on minio-go: the production store. It is the only package
// of checkpoint code that imports minio-go.
//
// Importing it registers the "s3" URL scheme:
//
//	s3://bucket/prefix?endpoint=127.0.0.1:9000&secure=false&region=us-east-1
//
// endpoint defaults to $ONCEFLOW_S3_ENDPOINT, then to AWS S3; secure
// defaults to true (or to the scheme of an endpoint written as
// http://host:port); credentials come from AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY (see Config).
//
// S3 makes a PUT visible only once complete, so readers never see partial
// objects. PutIfAbsent is a conditional PUT (If-None-Match: *), which the
// server rejects with 412 Precondition Failed when the key exists.
package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/onceflow/onceflow/checkpoint"
)

// markerName is the object Open writes to probe conditional writes. It is
// reserved as a last path segment: List hides it, the methods refuse it.
const markerName = ".onceflow-store"

// partSize is the multipart chunk for large or unknown-size uploads. minio-go
// would otherwise buffer ~537MiB per upload of unknown size. 16MiB parts
// allow objects up to 156GiB (10000 parts).
const partSize = 16 << 20

// Store is an S3-backed store, safe for concurrent use.
type Store struct {
	c      *minio.Client // retries idempotent requests
	once   *minio.Client // never retries: for conditional creates
	bucket string
	prefix string
}

func (s *Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

func (s *Store) key(name string) string {
	if s.prefix == "" {
		return name
	}
	return s.prefix + "/" + name
}

// check validates name and the context and returns name's key.
func (s *Store) check(ctx context.Context, op, name string) (string, error) {
	if err := checkpoint.ValidName(name); err != nil {
		return "", fmt.Errorf("%s: %s %q: %w", s, op, name, err)
	}
	if path.Base(name) == markerName {
		return "", fmt.Errorf("%s: %s %q: %q is reserved by the s3 store", s, op, name, markerName)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("%s: %s %s: %w", s, op, name, err)
	}
	return s.key(name), nil
}

// fail wraps a minio-go error with the store, the step and the object, and
// maps the S3 codes callers act on to checkpoint's sentinel errors.
func (s *Store) fail(op, name string, err error) error {
	switch minio.ToErrorResponse(err).Code {
	case minio.NoSuchKey:
		return fmt.Errorf("%s: %s %s: %w: %w", s, op, name, checkpoint.ErrNotFound, err)
	case minio.NoSuchBucket:
		return fmt.Errorf("%s: %s %s: bucket %q does not exist: %w", s, op, name, s.bucket, err)
	}
	return fmt.Errorf("%s: %s %s: %w", s, op, name, err)
}

func (s *Store) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	key, err := s.check(ctx, "put", name)
	if err != nil {
		return err
	}
	if size < 0 {
		// Most objects of unknown size are small: buffer up to one part
		// and send it as a single PUT rather than a multipart upload.
		head, err := io.ReadAll(io.LimitReader(r, partSize))
		if err != nil {
			return s.fail("put", name, fmt.Errorf("read body: %w", err))
		}
		if len(head) < partSize {
			r, size = bytes.NewReader(head), int64(len(head))
		} else {
			r = io.MultiReader(bytes.NewReader(head), r)
		}
	}
	if _, err := s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{PartSize: partSize}); err != nil {
		return s.fail("put", name, err)
	}
	return nil
}

func (s *Store) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	key, err := s.check(ctx, "put-if-absent", name)
	if err != nil {
		return err
	}
	return s.putIfAbsent(ctx, name, key, data)
}

// putIfAbsent sends a conditional PUT, retrying by hand the failures after
// which the object may or may not have been written (lost responses, 5xx,
// 409 ConditionalRequestConflict from a concurrent conditional write on AWS).
// A 412 on the first attempt means the key existed before we came. A 412 on
// a retry may be our own earlier attempt having landed: if the stored bytes
// are ours, the create succeeded.
func (s *Store) putIfAbsent(ctx context.Context, name, key string, data []byte) error {
	opts := minio.PutObjectOptions{DisableMultipart: true}
	opts.SetMatchETagExcept("*") // sends If-None-Match: *
	const attempts = 3
	for attempt := 1; ; attempt++ {
		_, err := s.once.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), opts)
		if err == nil {
			return nil
		}
		resp := minio.ToErrorResponse(err)
		if resp.StatusCode == http.StatusPreconditionFailed {
			if attempt > 1 && s.holds(ctx, key, data) {
				return nil
			}
			return fmt.Errorf("%s: put-if-absent %s: %w: %w", s, name, checkpoint.ErrExists, err)
		}
		transient := resp.StatusCode == 0 && resp.Code == "" || resp.StatusCode >= 500 ||
			resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusTooManyRequests
		if !transient || attempt == attempts || ctx.Err() != nil {
			return s.fail("put-if-absent", name, err)
		}
		select {
		case <-ctx.Done():
			return s.fail("put-if-absent", name, ctx.Err())
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

func (s *Store) holds(ctx context.Context, key string, data []byte) bool {
	rc, _, _, err := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return false
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	return err == nil && bytes.Equal(got, data)
}

func (s *Store) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	key, err := s.check(ctx, "get", name)
	if err != nil {
		return nil, err
	}
	// Core.GetObject sends the GET now, so a missing object is reported
	// here and not at the first Read. One GET streams one version of the
	// object, never a mix of two.
	rc, _, _, err := minio.Core{Client: s.c}.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, s.fail("get", name, err)
	}
	return &body{rc: rc, s: s, name: name}, nil
}

// body names the store and object in errors met while streaming.
type body struct {
	rc   io.ReadCloser
	s    *Store
	name string
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if err != nil && err != io.EOF {
		err = b.s.fail("read", b.name, err)
	}
	return n, err
}

func (b *body) Close() error { return b.rc.Close() }

func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: list %q: %w", s, prefix, err)
	}
	// Cancel on return so that minio-go's listing goroutine stops.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	base := s.key("")
	var names []string
	for obj := range s.c.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: base + prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, s.fail("list", fmt.Sprintf("%q", prefix), obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, base)
		// Keys that are not valid names were not written by a Store.
		// Markers are hidden at any depth, in case stores nest in a bucket.
		if path.Base(name) != markerName && checkpoint.ValidName(name) == nil {
			names = append(names, name)
		}
	}
	// A listing cut short by cancellation may end without an error item;
	// a partial list must never pass for a complete one (GC relies on it).
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%s: list %q: %w", s, prefix, err)
	}
	sort.Strings(names)
	return names, nil
}

func (s *Store) Delete(ctx context.Context, name string) error {
	key, err := s.check(ctx, "delete", name)
	if err != nil {
		return err
	}
	// S3 answers 204 for a missing key, so Delete is idempotent as is.
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil
		}
		return s.fail("delete", name, err)
	}
	return nil
}

var _ checkpoint.Store = (*Store)(nil)
