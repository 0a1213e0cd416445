package chaos

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/checkpoint/fsstore"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/internal/testjob"
)

// lossyManifests makes every third manifest write report an error: half of
// those after the manifest landed (a lost response), half without writing.
type lossyManifests struct {
	checkpoint.Store
	n, landed, dropped atomic.Int64
	mu                 sync.Mutex
	landedNames        []string
}

var errLostResponse = errors.New("injected: connection reset while reading the response")

func (s *lossyManifests) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	if !strings.HasSuffix(name, ".manifest") || s.n.Add(1)%3 != 0 {
		return s.Store.PutIfAbsent(ctx, name, data)
	}
	if s.n.Load()%2 == 0 {
		s.dropped.Add(1)
		return errLostResponse
	}
	if err := s.Store.PutIfAbsent(ctx, name, data); err != nil {
		return err
	}
	s.landed.Add(1)
	s.mu.Lock()
	s.landedNames = append(s.landedNames, name)
	s.mu.Unlock()
	return errLostResponse
}

// TestAmbiguousManifestWrites: a manifest that landed although its write
// reported an error is a completed checkpoint (its sinks must commit), one
// that did not land is an aborted one; with operator failures in between,
// the committed output stays exact.
func TestAmbiguousManifestWrites(t *testing.T) {
	dir := t.TempDir()
	fs, err := fsstore.Open(dir + "/ckpt")
	if err != nil {
		t.Fatal(err)
	}
	store := &lossyManifests{Store: fs}
	in := newInjector(7, map[string]int{"operator": 4})
	const records, keys = 30000, 100
	o := testjob.Options{Name: "ambiguous", Records: records, Keys: keys, Parallelism: 2, OutDir: dir + "/out", Rate: 5000,
		Fault: func(uint64) error { return in.fault("operator", 1.0/3000, false) }}
	completed := &completedNames{names: map[string]bool{}}
	cfg := engine.Config{Store: store, CheckpointInterval: 20 * time.Millisecond, TolerableFailures: 10,
		Restart: engine.FixedDelayRestart(-1, time.Millisecond), Tick: 2 * time.Millisecond, Listener: completed}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := engine.Run(ctx, testjob.Build(o), cfg); err != nil {
		t.Fatal(err)
	}
	verifyCommitted(t, o.OutDir, records, keys)
	t.Logf("manifest writes that landed but reported an error: %d; that failed: %d; operator faults: %d",
		store.landed.Load(), store.dropped.Load(), in.total())
	if store.landed.Load() == 0 || store.dropped.Load() == 0 || in.total() == 0 {
		t.Fatal("not every kind of fault fired")
	}
	// A durable manifest is a complete checkpoint, whatever its write said.
	for _, name := range store.landedNames {
		if !completed.has(name) {
			t.Errorf("manifest %s is durable but its checkpoint was not reported complete", name)
		}
	}
}

type completedNames struct {
	mu    sync.Mutex
	names map[string]bool
}

func (c *completedNames) CheckpointCompleted(m *checkpoint.Manifest, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.names[checkpoint.ManifestName(m.Job, m.ID)] = true
}
func (c *completedNames) CheckpointAborted(uint64, string)     {}
func (c *completedNames) Restarting(int, error, time.Duration) {}
func (c *completedNames) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.names[name]
}
