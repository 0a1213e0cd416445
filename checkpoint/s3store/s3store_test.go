package s3store_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/s3store"
	"github.com/onceflow/onceflow/checkpoint/storetest"
	"github.com/onceflow/onceflow/internal/testenv"
)

func open(t *testing.T, rawURL string) checkpoint.Store {
	t.Helper()
	s, err := checkpoint.Open(t.Context(), rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	testenv.S3(t)
	t.Run("Prefixed", func(t *testing.T) {
		// One bucket, one prefix per subtest: also shows that stores under
		// different prefixes of a bucket do not see each other.
		bucket := testenv.NewBucket(t)
		storetest.Run(t, func(t *testing.T) checkpoint.Store {
			sub := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
			return open(t, testenv.S3URL(t, bucket, "jobs/"+sub))
		})
	})
	t.Run("BucketRoot", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) checkpoint.Store {
			return open(t, testenv.S3URL(t, testenv.NewBucket(t), ""))
		})
	})
}

// PutIfAbsent's atomicity rests on the server answering a second conditional
// create with 412 Precondition Failed; check that this MinIO does.
func TestPutIfAbsentIsConditionalWrite(t *testing.T) {
	s := open(t, testenv.S3URL(t, testenv.NewBucket(t), "p"))
	if err := s.PutIfAbsent(t.Context(), "MANIFEST", []byte("a")); err != nil {
		t.Fatal(err)
	}
	err := s.PutIfAbsent(t.Context(), "MANIFEST", []byte("b"))
	var resp minio.ErrorResponse
	if !errors.Is(err, checkpoint.ErrExists) || !errors.As(err, &resp) ||
		resp.StatusCode != 412 || resp.Code != minio.PreconditionFailed {
		t.Fatalf("second create: err = %v (S3 response %+v), want ErrExists from 412 PreconditionFailed", err, resp)
	}
}

func TestPrefixIsolation(t *testing.T) {
	bucket := testenv.NewBucket(t)
	ctx := t.Context()
	a, ab, root := open(t, testenv.S3URL(t, bucket, "a")), open(t, testenv.S3URL(t, bucket, "ab")), open(t, testenv.S3URL(t, bucket, ""))
	if err := checkpoint.PutBytes(ctx, a, "x", []byte("1")); err != nil {
		t.Fatal(err)
	}
	if names, err := ab.List(ctx, ""); err != nil || len(names) != 0 {
		t.Fatalf("store ab lists %q, %v; want nothing", names, err)
	}
	if _, err := ab.Get(ctx, "x"); !errors.Is(err, checkpoint.ErrNotFound) {
		t.Fatalf("store ab Get x: %v, want ErrNotFound", err)
	}
	// The root store sees a's object but not the stores' probe markers.
	if names, err := root.List(ctx, ""); err != nil || !slices.Equal(names, []string{"a/x"}) {
		t.Fatalf("root store lists %q, %v; want [a/x]", names, err)
	}
	if err := checkpoint.PutBytes(ctx, root, "a/.onceflow-store", nil); err == nil {
		t.Fatal("Put of the reserved marker name succeeded")
	}
}

func TestMissingBucket(t *testing.T) {
	rawURL := testenv.S3URL(t, "onceflow-no-such-bucket", "p")
	_, err := checkpoint.Open(t.Context(), rawURL)
	if err == nil || !strings.Contains(err.Error(), `bucket "onceflow-no-such-bucket" does not exist`) {
		t.Fatalf("Open = %v, want bucket-does-not-exist error", err)
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret-key")
	start := time.Now()
	_, err = checkpoint.Open(t.Context(), "s3://bucket/p?secure=false&endpoint="+addr)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Open took %v against a closed port, want a quick failure", elapsed)
	}
	if err == nil || !strings.Contains(err.Error(), "endpoint "+addr+" unreachable") {
		t.Fatalf("Open = %v, want an error saying endpoint %s is unreachable", err, addr)
	}
}

func TestBadURLs(t *testing.T) {
	t.Setenv("ONCEFLOW_S3_ENDPOINT", "")
	for rawURL, want := range map[string]string{
		"s3:///prefix":                                  "missing bucket name",
		"s3://":                                         "missing bucket name",
		"s3:bucket":                                     "want s3://bucket/prefix",
		"s3://key:secret@bucket/p":                      "credentials in the URL are not supported",
		"s3://ab/p":                                     `invalid bucket name "ab"`,
		"s3://bucket/a//b":                              "prefix",
		"s3://bucket/../x":                              "prefix",
		"s3://bucket/p?endpoint=":                       "empty endpoint",
		"s3://bucket/p?endpoint=h/x":                    `endpoint "h/x": want host:port`,
		"s3://bucket/p?endpoint=ftp://h":                "scheme must be http or https",
		"s3://bucket/p?secure=maybe":                    `secure="maybe"`,
		"s3://bucket/p?bogus=1":                         `unknown query parameter "bogus"`,
		"s3://bucket/p?region=a&region=b":               `"region" given 2 times`,
		"s3://bucket/p?endpoint=https://h&secure=false": "contradicts",
		"s3://bucket/p#frag":                            `fragment "frag"`,
	} {
		_, err := checkpoint.Open(context.Background(), rawURL)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want error containing %q", rawURL, err, want)
		}
	}
}

func TestParseURL(t *testing.T) {
	env := map[string]string{"ONCEFLOW_S3_ENDPOINT": "http://minio:9000", "AWS_REGION": "eu-west-1"}
	for rawURL, want := range map[string]s3store.Config{
		"s3://bkt":                {Bucket: "bkt", Endpoint: "minio:9000", Region: "eu-west-1"},
		"s3://bkt/x/y/":           {Bucket: "bkt", Prefix: "x/y", Endpoint: "minio:9000", Region: "eu-west-1"},
		"s3://bkt/p?endpoint=h:1": {Bucket: "bkt", Prefix: "p", Endpoint: "h:1", Secure: true, Region: "eu-west-1"},
		"s3://bkt/p?endpoint=h:1&secure=false&region=r": {Bucket: "bkt", Prefix: "p", Endpoint: "h:1", Region: "r"},
		"s3://bkt?endpoint=https://h:1":                 {Bucket: "bkt", Endpoint: "h:1", Secure: true, Region: "eu-west-1"},
	} {
		u, err := url.Parse(rawURL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s3store.ParseURL(u, func(k string) string { return env[k] })
		if err != nil || got != want {
			t.Errorf("ParseURL(%q) = %+v, %v; want %+v", rawURL, got, err, want)
		}
	}
}
