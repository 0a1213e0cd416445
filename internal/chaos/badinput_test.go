package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/proctest"
)

// The job binary must turn bad configuration and damaged checkpoints into a
// precise error and a non-zero exit, never a panic or a silent fresh start.

func runKeyedcount(t *testing.T, args ...string) (exitCode int, output string) {
	t.Helper()
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/keyedcount")
	p := proctest.Start(t, bin, args)
	if !p.Wait(time.Minute) {
		p.Kill()
		t.Fatalf("keyedcount %v did not exit:\n%s", args, p.Output())
	}
	code := 0
	if err := p.Err(); err != nil {
		code = p.ExitCode()
	}
	out := p.Output()
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") {
		t.Fatalf("keyedcount %v panicked:\n%s", args, out)
	}
	return code, out
}

func TestBadStoreURL(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"bogus://x/y", `no store registered for scheme "bogus"`},
		{"file://relative/dir", "file"},
		{"s3:///no-bucket", "bucket"},
		{"://nonsense", "checkpoint store URL"},
	} {
		code, out := runKeyedcount(t, "-records", "10", "-checkpoint-store", tc.url)
		if code != 2 || !strings.Contains(out, tc.want) || !strings.Contains(out, "checkpoint store URL") {
			t.Errorf("store URL %q: exit %d, output %q; want exit 2 naming the URL and %q", tc.url, code, out, tc.want)
		}
	}
}

func TestUnreachableS3(t *testing.T) {
	start := time.Now()
	// Port 1 on loopback: nothing listens there.
	code, out := runKeyedcount(t, "-records", "10", "-checkpoint-store", "s3://bucket/p?endpoint=127.0.0.1:1&secure=false")
	t.Logf("unreachable endpoint: %s", out)
	if code == 0 || !strings.Contains(out, "127.0.0.1:1") {
		t.Fatalf("exit %d, output %q; want a failure naming the endpoint", code, out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("took %v to report an unreachable endpoint", d)
	}
}

func TestCorruptManifestRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	store, out := filepath.Join(dir, "ckpt"), filepath.Join(dir, "out")
	args := []string{"-records", "2000", "-keys", "40", "-checkpoint-store", "file://" + store, "-out", out}
	if code, o := runKeyedcount(t, args...); code != 0 {
		t.Fatalf("first run: exit %d\n%s", code, o)
	}
	manifests, _ := filepath.Glob(filepath.Join(store, "keyedcount", "checkpoints", "*.manifest"))
	if len(manifests) == 0 {
		t.Fatal("no manifest written")
	}
	latest := manifests[len(manifests)-1]
	data, err := os.ReadFile(latest)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(latest, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, o := runKeyedcount(t, args...)
	if code == 0 || !strings.Contains(o, filepath.Base(latest)) || !strings.Contains(o, "corrupt") {
		t.Fatalf("exit %d, output %q; want a failure naming the corrupt manifest %s", code, o, filepath.Base(latest))
	}
}
