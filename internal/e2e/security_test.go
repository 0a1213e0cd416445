package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/proctest"
)

// TestServeSecurity: no token on a non-loopback address refuses to start;
// with a token, a client without it or with a wrong one gets 401; an
// unreachable runner is a clear error.
func TestServeSecurity(t *testing.T) {
	onceflow := proctest.Build(t, mod+"/cmd/onceflow")
	dir := t.TempDir()

	p := startProc(t, onceflow, "serve", "--addr", "0.0.0.0:0", "--data", filepath.Join(dir, "a"))
	if !p.Wait(30 * time.Second) {
		p.Kill()
		t.Fatal("serve on 0.0.0.0 without a token did not refuse to start")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(p.Output(), "refusing to listen on 0.0.0.0:0 without a token") {
		t.Fatalf("serve on 0.0.0.0 without a token: exit %d\n%s", code, p.Output())
	}

	rn := startRunner(t, onceflow, filepath.Join(dir, "b"), "0.0.0.0:0", "--token", "tok-123")
	url := strings.Replace(rn.url, "0.0.0.0", "127.0.0.1", 1)
	if _, err := cli(onceflow, url, "jobs"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("jobs without a token: %v", err)
	}
	if _, err := cli(onceflow, url, "jobs", "--token", "tok-12"); err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Fatalf("jobs with a wrong token: %v", err)
	}
	if out, err := cli(onceflow, url, "jobs", "--token", "tok-123"); err != nil || !strings.Contains(out, "STATE") {
		t.Fatalf("jobs with the token: %v\n%s", err, out)
	}
	if _, err := cli(onceflow, url, "submit", "--token", "tok-123", "/no/such/binary"); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("submit of a missing binary: %v", err)
	}
	if _, err := cli(onceflow, url, "submit", "--token", "tok-123", "--remote-path", "/no/such/binary"); err == nil || !strings.Contains(err.Error(), "no such binary on the runner's machine") {
		t.Fatalf("submit of a missing remote binary: %v", err)
	}
	if _, err := cli(onceflow, url, "status", "--token", "tok-123", "j42"); err == nil || !strings.Contains(err.Error(), "HTTP 404") {
		t.Fatalf("status of an unknown job: %v", err)
	}
	rn.p.Kill()
	if _, err := cli(onceflow, url, "jobs"); err == nil || !strings.Contains(err.Error(), "cannot reach the onceflow runner") {
		t.Fatalf("jobs with the runner down: %v", err)
	}
	if _, err := cli(onceflow, url, "status"); err == nil || !strings.Contains(err.Error(), "usage: onceflow status") {
		t.Fatalf("status without a job: %v", err)
	}
}
