// Package client is the HTTP client of the onceflow runner's REST API, used
// by the onceflow CLI.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/onceflow/onceflow/runner"
	"github.com/onceflow/onceflow/runner/api"
)

// DefaultURL is where `onceflow serve` listens by default.
const DefaultURL = "http://127.0.0.1:8081"

// Client calls one runner.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

// New returns a client of the runner at base (such as DefaultURL).
func New(base, token string) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("runner URL %q: want http://host:port", base)
	}
	return &Client{base: strings.TrimSuffix(base, "/"), token: token, hc: &http.Client{}}, nil
}

// APIError is an error response of the runner.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("runner: %s (HTTP %d)", e.Message, e.Status)
}

// ErrUnreachable wraps failures to connect to the runner at all.
var ErrUnreachable = errors.New("cannot reach the onceflow runner")

func (c *Client) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		return fmt.Errorf("%w at %s: %v (is `onceflow serve` or `onceflow dev` running? set --runner or ONCEFLOW_RUNNER)", ErrUnreachable, c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	var body io.Reader
	ct := ""
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body, ct = bytes.NewReader(data), "application/json"
	}
	return c.do(ctx, http.MethodPost, path, body, ct, out)
}

// Health checks that the runner answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, "/v1/health", nil, "", &map[string]bool{})
}

// Upload sends a job binary and returns its name for SubmitRequest.Binary.
func (c *Client) Upload(ctx context.Context, bin io.Reader) (api.UploadResult, error) {
	var res api.UploadResult
	err := c.do(ctx, http.MethodPost, "/v1/binaries", bin, "application/octet-stream", &res)
	return res, err
}

// Submit submits a job.
func (c *Client) Submit(ctx context.Context, req runner.SubmitRequest) (*runner.JobView, error) {
	var v runner.JobView
	return &v, c.postJSON(ctx, "/v1/jobs", req, &v)
}

// Jobs lists the jobs.
func (c *Client) Jobs(ctx context.Context) ([]*runner.JobView, error) {
	var v []*runner.JobView
	return v, c.do(ctx, http.MethodGet, "/v1/jobs", nil, "", &v)
}

// Job returns one job.
func (c *Client) Job(ctx context.Context, id string) (*runner.JobView, error) {
	var v runner.JobView
	return &v, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id), nil, "", &v)
}

// Trigger asks for a "checkpoint", "savepoint" or "stop" (with savepoint)
// and waits up to timeout (0: the runner's default).
func (c *Client) Trigger(ctx context.Context, id, act string, timeout time.Duration) (*runner.SavepointResult, error) {
	path := "/v1/jobs/" + url.PathEscape(id) + "/" + act
	if timeout > 0 {
		path += "?timeout=" + url.QueryEscape(timeout.String())
	}
	var res runner.SavepointResult
	return &res, c.postJSON(ctx, path, nil, &res)
}

// Cancel cancels a job.
func (c *Client) Cancel(ctx context.Context, id string) (*runner.JobView, error) {
	var v runner.JobView
	return &v, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/cancel", nil, &v)
}

// Restore restarts a job from a restore point.
func (c *Client) Restore(ctx context.Context, id string, req runner.RestoreRequest) (*runner.JobView, error) {
	var v runner.JobView
	return &v, c.postJSON(ctx, "/v1/jobs/"+url.PathEscape(id)+"/restore", req, &v)
}

// Checkpoints lists a job's checkpoints and savepoints in its store.
func (c *Client) Checkpoints(ctx context.Context, id string) ([]runner.RestorePoint, error) {
	var v []runner.RestorePoint
	return v, c.do(ctx, http.MethodGet, "/v1/jobs/"+url.PathEscape(id)+"/checkpoints", nil, "", &v)
}

// Savepoints lists every job's savepoints.
func (c *Client) Savepoints(ctx context.Context) ([]runner.RestorePoint, error) {
	var v []runner.RestorePoint
	return v, c.do(ctx, http.MethodGet, "/v1/savepoints", nil, "", &v)
}

// DeleteSavepoint deletes a savepoint by path.
func (c *Client) DeleteSavepoint(ctx context.Context, path string) error {
	return c.do(ctx, http.MethodDelete, "/v1/savepoints/"+path, nil, "", nil)
}

// DeleteJob deletes a job that has ended, with its checkpoints and its
// uploaded binary (see runner.Runner.Delete).
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/jobs/"+url.PathEscape(id), nil, "", nil)
}
