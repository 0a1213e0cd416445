// Package testenv gives integration tests the real services they need.
//
// scripts/test starts them (a pinned MinIO on a loopback port) and exports
// their addresses; pointing the same variables at existing services runs the
// tests against those instead:
//
//	ONCEFLOW_TEST_S3_ENDPOINT    host:port of an S3 server (plain HTTP)
//	ONCEFLOW_TEST_S3_ACCESS_KEY  its access key
//	ONCEFLOW_TEST_S3_SECRET_KEY  its secret key
//
// When they are missing a test is skipped, except under CI=true, where a
// missing dependency is a failure and not a silent skip.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 returns the test S3 server's endpoint and credentials, or ends the test.
func S3(t testing.TB) (endpoint, accessKey, secretKey string) {
	t.Helper()
	endpoint = os.Getenv("ONCEFLOW_TEST_S3_ENDPOINT")
	accessKey = os.Getenv("ONCEFLOW_TEST_S3_ACCESS_KEY")
	secretKey = os.Getenv("ONCEFLOW_TEST_S3_SECRET_KEY")
	if endpoint == "" || accessKey == "" || secretKey == "" {
		msg := "no S3 server: ONCEFLOW_TEST_S3_ENDPOINT, ONCEFLOW_TEST_S3_ACCESS_KEY and ONCEFLOW_TEST_S3_SECRET_KEY must be set; run scripts/test, which starts MinIO"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return endpoint, accessKey, secretKey
}

// NewBucket creates a fresh bucket with a unique name on the test S3 server
// and removes it, with its content, when the test ends.
func NewBucket(t testing.TB) string {
	t.Helper()
	endpoint, accessKey, secretKey := S3(t)
	c, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4(accessKey, secretKey, "")})
	if err != nil {
		t.Fatalf("testenv: S3 client for %s: %v", endpoint, err)
	}
	bucket := bucketName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("testenv: create bucket %s on %s: %v", bucket, endpoint, err)
	}
	t.Cleanup(func() {
		// t.Context is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// ForceDelete is MinIO's: it removes the content with the bucket.
		if err := c.RemoveBucketWithOptions(ctx, bucket, minio.RemoveBucketOptions{ForceDelete: true}); err != nil {
			t.Errorf("testenv: remove bucket %s: %v", bucket, err)
		}
	})
	return bucket
}

// bucketName derives a valid, unique bucket name (3-63 of [a-z0-9-]) from a
// test name, so that a leftover bucket says which test made it.
func bucketName(testName string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(testName) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	stem := strings.Trim(b.String(), "-")
	if len(stem) > 40 {
		stem = strings.TrimRight(stem[:40], "-")
	}
	suffix := make([]byte, 6)
	rand.Read(suffix)
	return "oft-" + stem + "-" + hex.EncodeToString(suffix)
}

// S3URL returns the s3:// store URL for bucket and prefix on the test
// server. It exports the credentials as AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY for the test (t.Setenv), where the store's standard
// credential chain finds them; so it cannot be used in parallel tests.
func S3URL(t testing.TB, bucket, prefix string) string {
	t.Helper()
	endpoint, accessKey, secretKey := S3(t)
	t.Setenv("AWS_ACCESS_KEY_ID", accessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	t.Setenv("AWS_SESSION_TOKEN", "") // a developer's own session must not leak in
	// Not url.Values.Encode: it would escape the ':' of host:port, which
	// makes the URLs in test logs harder to read and to paste.
	u := url.URL{Scheme: "s3", Host: bucket, Path: "/" + prefix, RawQuery: "endpoint=" + endpoint + "&secure=false"}
	return u.String()
}
