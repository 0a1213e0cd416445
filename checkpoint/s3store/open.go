package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/onceflow/onceflow/checkpoint"
)

func init() {
	checkpoint.Register("s3", func(ctx context.Context, u *url.URL) (checkpoint.Store, error) {
		cfg, err := ParseURL(u, os.Getenv)
		if err != nil {
			return nil, err
		}
		return Open(ctx, cfg)
	})
}

// Config locates a store. The zero value of every optional field is
// documented next to it.
type Config struct {
	Bucket string // required
	// Prefix is prepended, with a '/', to every object name; "" stores at the
	// bucket root. It must itself be a valid object name (see
	// checkpoint.ValidName).
	Prefix string
	// Endpoint is host[:port]; "" means AWS S3 (s3.amazonaws.com).
	Endpoint string
	// Secure selects HTTPS.
	Secure bool
	// Region; "" lets the client discover it from the bucket.
	Region string
	// AccessKey and SecretKey, when AccessKey is set, are used as given.
	// Otherwise credentials come from the standard environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, then
	// MINIO_ROOT_USER/MINIO_ROOT_PASSWORD) and then ~/.aws/credentials.
	AccessKey, SecretKey, SessionToken string
}

// dialTimeout bounds connection setup, so that an unreachable endpoint fails
// in seconds instead of the 30s default (and many retries of it).
const dialTimeout = 5 * time.Second

// openTimeout bounds the checks Open makes when the caller's context has no
// earlier deadline: opening a store must fail clearly, never hang.
const openTimeout = 20 * time.Second

// ParseURL reads s3://bucket/prefix?endpoint=host:port&secure=false&region=r.
// getenv supplies ONCEFLOW_S3_ENDPOINT (the endpoint when the URL has none)
// and AWS_REGION (the region when the URL has none).
func ParseURL(u *url.URL, getenv func(string) string) (Config, error) {
	var cfg Config
	switch {
	case u.Opaque != "":
		return cfg, fmt.Errorf("s3 store: want s3://bucket/prefix, got opaque %q", u.Opaque)
	case u.User != nil:
		return cfg, errors.New("s3 store: credentials in the URL are not supported (they would leak into logs); use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
	case u.Host == "":
		return cfg, errors.New("s3 store: missing bucket name (want s3://bucket/prefix)")
	case u.Fragment != "":
		return cfg, fmt.Errorf("s3 store: fragment %q not allowed", u.Fragment)
	}
	cfg.Bucket = u.Host
	cfg.Prefix = strings.TrimSuffix(strings.TrimPrefix(u.Path, "/"), "/")

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg, fmt.Errorf("s3 store: query %q: %w", u.RawQuery, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return cfg, fmt.Errorf("s3 store: query parameter %q given %d times", k, len(v))
		}
		if k != "endpoint" && k != "secure" && k != "region" {
			return cfg, fmt.Errorf("s3 store: unknown query parameter %q (known: endpoint, secure, region)", k)
		}
	}
	endpoint, secureFromScheme := q.Get("endpoint"), ""
	if !q.Has("endpoint") {
		endpoint = getenv("ONCEFLOW_S3_ENDPOINT")
	} else if endpoint == "" {
		return cfg, errors.New("s3 store: empty endpoint parameter (want endpoint=host:port)")
	}
	// An endpoint may be written as a URL; its scheme then implies secure.
	if scheme, rest, ok := strings.Cut(endpoint, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return cfg, fmt.Errorf("s3 store: endpoint %q: scheme must be http or https", endpoint)
		}
		endpoint, secureFromScheme = strings.TrimSuffix(rest, "/"), strconv.FormatBool(scheme == "https")
	}
	if strings.ContainsAny(endpoint, "/?#@ ") {
		return cfg, fmt.Errorf("s3 store: endpoint %q: want host:port", endpoint)
	}
	cfg.Endpoint = endpoint

	secure := q.Get("secure")
	switch {
	case !q.Has("secure") && secureFromScheme != "":
		secure = secureFromScheme
	case !q.Has("secure"):
		secure = "true"
	case secureFromScheme != "" && secure != secureFromScheme:
		return cfg, fmt.Errorf("s3 store: secure=%s contradicts the endpoint's scheme", secure)
	}
	if cfg.Secure, err = strconv.ParseBool(secure); err != nil {
		return cfg, fmt.Errorf("s3 store: secure=%q: want true or false", secure)
	}
	cfg.Region = q.Get("region")
	if cfg.Region == "" {
		cfg.Region = getenv("AWS_REGION")
	}
	return cfg, cfg.validate()
}

func (c Config) validate() error {
	if c.Bucket == "" {
		return errors.New("s3 store: missing bucket name (want s3://bucket/prefix)")
	}
	if err := s3utils.CheckValidBucketName(c.Bucket); err != nil {
		return fmt.Errorf("s3 store: invalid bucket name %q: %w", c.Bucket, err)
	}
	if c.Prefix != "" {
		if err := checkpoint.ValidName(c.Prefix); err != nil {
			return fmt.Errorf("s3 store: prefix: %w", err)
		}
	}
	return nil
}

// Open connects to the bucket, checks that it exists and that the server
// honours conditional writes, which PutIfAbsent's guarantee rests on.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	endpoint := cfg.Endpoint
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	tr, err := minio.DefaultTransport(cfg.Secure)
	if err != nil {
		return nil, fmt.Errorf("s3 store: http transport: %w", err)
	}
	tr.DialContext = (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)
	if cfg.AccessKey == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{}, &credentials.EnvMinio{}, &credentials.FileAWSCredentials{},
		})
	}
	newClient := func(maxRetries int) (*minio.Client, error) {
		return minio.New(endpoint, &minio.Options{
			Creds: creds, Secure: cfg.Secure, Region: cfg.Region, Transport: tr, MaxRetries: maxRetries,
		})
	}
	c, err := newClient(0) // minio-go's default retries, for idempotent requests
	if err != nil {
		return nil, fmt.Errorf("s3 store: endpoint %q: %w", endpoint, err)
	}
	// Conditional creates must not be retried blindly: a retry of a create
	// that landed would see 412 and report someone else's win.
	once, err := newClient(1)
	if err != nil {
		return nil, fmt.Errorf("s3 store: endpoint %q: %w", endpoint, err)
	}
	s := &Store{c: c, once: once, bucket: cfg.Bucket, prefix: cfg.Prefix}
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > openTimeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, openTimeout)
		defer cancel()
	}
	exists, err := once.BucketExists(ctx, cfg.Bucket)
	switch {
	case err != nil && isNetError(err):
		return nil, fmt.Errorf("s3 store: endpoint %s unreachable: %w", endpoint, err)
	case err != nil:
		return nil, fmt.Errorf("s3 store: check bucket %q on %s: %w", cfg.Bucket, endpoint, err)
	case !exists:
		return nil, fmt.Errorf("s3 store: bucket %q does not exist on %s", cfg.Bucket, endpoint)
	}
	if err := s.probeConditionalWrites(ctx); err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}
	return s, nil
}

// probeConditionalWrites creates the store's marker object if absent, then
// creates it again, which must fail. A server that ignores If-None-Match
// would let two incarnations of a job both complete a checkpoint, so such a
// store is refused here rather than corrupting a job later.
func (s *Store) probeConditionalWrites(ctx context.Context) error {
	data := []byte("onceflow checkpoint store; this object checks that the server supports conditional writes\n")
	first := s.putIfAbsent(ctx, markerName, s.key(markerName), data)
	if first != nil && !errors.Is(first, checkpoint.ErrExists) {
		return fmt.Errorf("probe conditional writes: %w", first)
	}
	if first != nil {
		return nil // it existed and the server refused to overwrite it
	}
	// Different bytes, so that putIfAbsent cannot take the marker for the
	// landing of its own retried create.
	switch err := s.putIfAbsent(ctx, markerName, s.key(markerName), append(data, '\n')); {
	case errors.Is(err, checkpoint.ErrExists):
		return nil
	case err != nil:
		return fmt.Errorf("probe conditional writes: %w", err)
	default:
		return fmt.Errorf("%s: the server ignores conditional writes (If-None-Match: *), so manifests cannot be created atomically; use a server that supports them (MinIO since 2024, AWS S3 since August 2024)", s)
	}
}

// isNetError tells a failure to reach the server from an answer by it.
func isNetError(err error) bool {
	var ue *url.Error
	var ne net.Error
	return errors.As(err, &ue) || errors.As(err, &ne)
}
