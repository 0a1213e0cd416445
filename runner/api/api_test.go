package api

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/runner"
)

func TestCheckBind(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:8081": true, "[::1]:8081": true, "localhost:0": true,
		"0.0.0.0:8081": false, ":8081": false, "192.0.2.7:80": false, "[::]:80": false,
	} {
		err := CheckBind(addr, "")
		if (err == nil) != ok {
			t.Errorf("CheckBind(%q, no token) = %v", addr, err)
		}
		if err := CheckBind(addr, "secret"); err != nil {
			t.Errorf("CheckBind(%q, token) = %v", addr, err)
		}
	}
	if err := CheckBind("0.0.0.0:1", ""); err == nil || !strings.Contains(err.Error(), "without a token") {
		t.Errorf("refusal does not say why: %v", err)
	}
}

type fixture struct {
	t   *testing.T
	srv *httptest.Server
	r   *runner.Runner
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	r, err := runner.Open(runner.Config{DataDir: t.TempDir(), PollInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(r, cfg))
	t.Cleanup(func() { srv.Close(); r.Close() })
	return &fixture{t: t, srv: srv, r: r}
}

// call sends a request and returns the status and the error message (or
// the body).
func (f *fixture) call(method, path, token string, body io.Reader, ct string) (int, string) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e Error
	if json.Unmarshal(data, &e) == nil && e.Error != "" {
		return resp.StatusCode, e.Error
	}
	return resp.StatusCode, string(data)
}

func (f *fixture) expect(method, path, body string, status int, contains string) {
	f.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	got, msg := f.call(method, path, "", rd, "")
	if got != status || !strings.Contains(msg, contains) {
		f.t.Errorf("%s %s %.60q: HTTP %d %q; want %d containing %q", method, path, body, got, msg, status, contains)
	}
}

func TestToken(t *testing.T) {
	f := newFixture(t, Config{Token: "s3cret"})
	for _, tok := range []string{"", "wrong", "s3cre", "s3cret2"} {
		if st, msg := f.call("GET", "/v1/jobs", tok, nil, ""); st != http.StatusUnauthorized || !strings.Contains(msg, "token") {
			t.Errorf("token %q: HTTP %d %q, want 401", tok, st, msg)
		}
	}
	if st, _ := f.call("GET", "/v1/jobs", "s3cret", nil, ""); st != http.StatusOK {
		t.Errorf("right token: HTTP %d", st)
	}
	if st, _ := f.call("GET", "/metrics", "", nil, ""); st != http.StatusUnauthorized {
		t.Errorf("metrics without token: HTTP %d", st)
	}
	if st, _ := f.call("GET", "/?token=s3cret", "", nil, ""); st != http.StatusOK {
		t.Errorf("page with ?token: HTTP %d", st)
	}
	if st, _ := f.call("GET", "/v1/jobs?token=s3cret", "", nil, ""); st != http.StatusUnauthorized {
		t.Errorf("?token accepted beyond the page: HTTP %d", st)
	}
	if st, _ := f.call("GET", "/v1/health", "", nil, ""); st != http.StatusOK {
		t.Errorf("health: HTTP %d", st)
	}
}

func TestBadRequests(t *testing.T) {
	f := newFixture(t, Config{MaxBodyBytes: 1024, MaxUploadBytes: 4096})
	// A job to refer to: it finishes at once.
	job := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(job, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := f.r.Submit(t.Context(), runner.SubmitRequest{Path: job})
	if err != nil {
		t.Fatal(err)
	}

	f.expect("POST", "/v1/jobs", `{"path": "`+strings.Repeat("x", 2000)+`"}`, 413, "larger than 1024 bytes")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true",`, 400, "truncated JSON")
	f.expect("POST", "/v1/jobs", `{"path": /bin/true}`, 400, "malformed JSON at byte 10")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "parallelism": "4"}`, 400, `field "parallelism"`)
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "paralelism": 4}`, 400, `unknown field "paralelism"`)
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true"} {}`, 400, "data after the JSON object")
	f.expect("POST", "/v1/jobs", ``, 400, "empty request body")
	f.expect("POST", "/v1/jobs", `{}`, 400, "no binary")
	f.expect("POST", "/v1/jobs", `{"path": "/no/such/job"}`, 400, "no such binary on the runner's machine")
	f.expect("POST", "/v1/jobs", `{"path": "relative/job"}`, 400, "must be absolute")
	f.expect("POST", "/v1/jobs", `{"binary": "sha256:`+strings.Repeat("ab", 32)+`"}`, 400, "was not uploaded")
	f.expect("POST", "/v1/jobs", `{"binary": "md5:abc"}`, 400, "want sha256:")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "parallelism": -1}`, 400, "parallelism -1")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "args": ["-restore", "none"]}`, 400, "the runner sets -restore")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "config": {"checkpoint-interval": "often"}}`, 400, "checkpoint-interval")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "restart": "forever"}`, 400, "restart policy")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "from": "/tmp/x/savepoints/00000000000000000001/manifest"}`, 400, "not a checkpoint or savepoint in the runner's stores")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "from": "`+v.ID+`/../../etc/passwd"}`, 400, "not a checkpoint or savepoint")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "from": "j99/wc/savepoints/00000000000000000001/manifest"}`, 400, "job j99: no such job")
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "from": "`+v.ID+`/wc/savepoints/00000000000000000001/manifest"}`, 404, "no such savepoint in the store of job "+v.ID)
	f.expect("POST", "/v1/jobs", `{"path": "/bin/true", "from": "`+v.ID+`/wc/savepoints/00000000000000000001/data/x"}`, 400, "not a checkpoint or savepoint")

	f.expect("GET", "/v1/jobs/j99", "", 404, `job "j99"`)
	f.expect("POST", "/v1/jobs/j99/checkpoint", "", 404, `job "j99"`)
	f.expect("POST", "/v1/jobs/j99/stop", "", 404, `job "j99"`)
	f.expect("POST", "/v1/jobs/j99/cancel", "", 404, `job "j99"`)
	f.expect("GET", "/v1/jobs/j99/checkpoints", "", 404, `job "j99"`)
	f.expect("POST", "/v1/jobs/j99/restore", `{"from": "latest"}`, 404, `job "j99"`)
	f.expect("POST", "/v1/jobs/"+v.ID+"/restore", `{"from": "/etc/passwd"}`, 400, "not a checkpoint or savepoint")
	f.expect("POST", "/v1/jobs/"+v.ID+"/restore", `{"from": "latest", "parallelism": 100000}`, 400, "parallelism 100000")
	f.expect("POST", "/v1/jobs/"+v.ID+"/checkpoint?timeout=forever", "", 400, `timeout "forever"`)
	f.expect("POST", "/v1/jobs/"+v.ID+"/checkpoint?timeout=1h", "", 400, `timeout "1h"`)
	f.expect("DELETE", "/v1/savepoints/etc/passwd", "", 400, "not a checkpoint or savepoint")
	f.expect("DELETE", "/v1/savepoints/"+v.ID+"/wc/checkpoints/00000000000000000001.manifest", "", 400, "is a checkpoint")
	f.expect("DELETE", "/v1/savepoints/"+v.ID+"/wc/savepoints/00000000000000000001/manifest", "", 404, "savepoint")
	f.expect("GET", "/v1/nothing", "", 404, "no endpoint GET /v1/nothing")
	f.expect("PUT", "/v1/jobs", "", 404, "no endpoint PUT /v1/jobs")

	// The job finished: it has no process to checkpoint.
	deadline := time.Now().Add(10 * time.Second)
	for st, _ := f.r.Get(v.ID); st.State != runner.StateFinished && time.Now().Before(deadline); st, _ = f.r.Get(v.ID) {
		time.Sleep(10 * time.Millisecond)
	}
	f.expect("POST", "/v1/jobs/"+v.ID+"/checkpoint", "", 409, "is FINISHED; a checkpoint needs it RUNNING")
	f.expect("POST", "/v1/jobs/"+v.ID+"/cancel", "", 409, "already FINISHED")

	if st, msg := f.call("POST", "/v1/jobs", "", strings.NewReader(`{"path":"/bin/true"}`), "text/plain"); st != 400 || !strings.Contains(msg, "Content-Type") {
		t.Errorf("text/plain submit: HTTP %d %q", st, msg)
	}
	if st, msg := f.call("POST", "/v1/binaries", "", strings.NewReader("#!/bin/sh\necho hi\n"), "application/octet-stream"); st != 400 || !strings.Contains(msg, "not an ELF executable") {
		t.Errorf("script upload: HTTP %d %q", st, msg)
	}
	if st, _ := f.call("POST", "/v1/binaries", "", bytes.NewReader(append([]byte("\x7fELF"), make([]byte, 8000)...)), ""); st != 413 {
		t.Errorf("oversized upload: HTTP %d", st)
	}
	if st, msg := f.call("POST", "/v1/binaries", "", bytes.NewReader(append([]byte("\x7fELF"), make([]byte, 100)...)), ""); st != 201 || !strings.Contains(msg, "sha256:") {
		t.Errorf("upload: HTTP %d %q", st, msg)
	}
}

func TestMetricsAndPage(t *testing.T) {
	f := newFixture(t, Config{})
	job := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(job, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	v, err := f.r.Submit(t.Context(), runner.SubmitRequest{Path: job, Name: `we<ird> "name"`})
	if err != nil {
		t.Fatal(err)
	}
	st, body := f.call("GET", "/metrics", "", nil, "")
	if st != 200 || !strings.Contains(body, "# TYPE onceflow_job_state gauge") ||
		!strings.Contains(body, `onceflow_job_state{job="`+v.ID+`",name="we<ird> \"name\"",state="STARTING"}`) ||
		!strings.Contains(body, "# TYPE onceflow_checkpoints_completed_total counter") {
		t.Errorf("metrics: HTTP %d\n%s", st, body)
	}
	st, body = f.call("GET", "/", "", nil, "")
	if st != 200 || !strings.Contains(body, "job-"+v.ID) || !strings.Contains(body, "we&lt;ird&gt;") {
		t.Errorf("page: HTTP %d\n%s", st, body)
	}
}
