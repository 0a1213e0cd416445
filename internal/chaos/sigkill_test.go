package chaos

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/internal/proctest"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/internal/testjob"
)

// TestSIGKILLFileStore kills the keyedcount job (in-memory state) with
// SIGKILL at random moments and restarts it from its fsstore checkpoints
// until it finishes.
func TestSIGKILLFileStore(t *testing.T) {
	dir := t.TempDir()
	runKillLoop(t, "file://"+filepath.Join(dir, "ckpt"), filepath.Join(dir, "out"), nil, "-state", "memory")
}

// TestSIGKILLS3Store does the same with checkpoints in a real MinIO server.
func TestSIGKILLS3Store(t *testing.T) {
	endpoint, access, secret := testenv.S3(t)
	bucket := testenv.NewBucket(t)
	url := fmt.Sprintf("s3://%s/jobs?endpoint=%s&secure=false", bucket, endpoint)
	runKillLoop(t, url, filepath.Join(t.TempDir(), "out"), []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}, "-state", "memory")
}

const (
	killRecords = 100000
	killKeys    = 400
)

// runKillLoop SIGKILLs keyedcount (with extra arguments) 12 times at random
// moments, lets it finish, and checks the committed output against the
// oracle.
func runKillLoop(t *testing.T, storeURL, out string, env []string, extra ...string) {
	const (
		records = killRecords
		keys    = killKeys
		kills   = 12
	)
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/keyedcount")
	args := []string{
		"-records", fmt.Sprint(records), "-keys", fmt.Sprint(keys),
		// ~10 s of input at parallelism 2: the kills land mid-stream.
		"-rate", "5000", "-parallelism", "2",
		"-out", out, "-checkpoint-store", storeURL,
		"-checkpoint-interval", "50ms", "-restart", "none",
	}
	args = append(args, extra...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	killed := 0
	for killed < kills {
		p := proctest.Start(t, bin, args, env...)
		if p.Wait(time.Duration(50+rng.IntN(450)) * time.Millisecond) {
			t.Fatalf("job exited before kill %d (it must still be running): %v\n%s", killed+1, p.Err(), p.Output())
		}
		if p.Kill() {
			killed++
		}
	}
	p := proctest.Start(t, bin, args, env...)
	if !p.Wait(3 * time.Minute) {
		p.Kill()
		t.Fatalf("job did not finish after the kills:\n%s", p.Output())
	}
	if err := p.Err(); err != nil {
		t.Fatalf("final run failed: %v\n%s", err, p.Output())
	}
	lines, err := file.ReadCommitted(out, "out")
	if err != nil {
		t.Fatal(err)
	}
	if err := testjob.Verify(lines, records, keys); err != nil {
		t.Fatalf("after %d SIGKILLs: %v", killed, err)
	}
	t.Logf("%d SIGKILLs, then exact output: %d records", killed, len(lines))
}
