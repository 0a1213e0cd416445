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

// TestSIGKILLS3StorePebble kills the keyedcount job, its keyed state in
// Pebble, with SIGKILL at random moments (during snapshots, uploads,
// restores, garbage collection...) and restarts it from its checkpoints in
// MinIO, with local recovery from the state directory its previous
// incarnation left, until it finishes with exact output.
func TestSIGKILLS3StorePebble(t *testing.T) {
	endpoint, access, secret := testenv.S3(t)
	bucket := testenv.NewBucket(t)
	storeURL := fmt.Sprintf("s3://%s/jobs?endpoint=%s&secure=false", bucket, endpoint)
	env := []string{"AWS_ACCESS_KEY_ID=" + access, "AWS_SECRET_ACCESS_KEY=" + secret}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	const (
		records = 100000
		keys    = 400
		kills   = 12
	)
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/keyedcount")
	args := []string{
		"-records", fmt.Sprint(records), "-keys", fmt.Sprint(keys),
		"-rate", "5000", "-parallelism", "2",
		"-out", out, "-checkpoint-store", storeURL,
		"-checkpoint-interval", "50ms", "-restart", "none",
		"-state", "pebble", "-state-dir", filepath.Join(dir, "state"),
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	killed := 0
	for killed < kills {
		p := proctest.Start(t, bin, args, env...)
		if p.Wait(time.Duration(100+rng.IntN(600)) * time.Millisecond) {
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
	t.Logf("%d SIGKILLs with Pebble state, then exact output: %d records", killed, len(lines))
}
