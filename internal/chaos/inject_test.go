package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// injector decides, from a seeded generator, where faults fire, and counts
// them. Each kind has a quota so that every kind fires and the job can
// finish once all quotas are spent.
type injector struct {
	mu    sync.Mutex
	rng   *rand.Rand
	quota map[string]int
	fired map[string]int
}

var errInjected = errors.New("injected fault")

func newInjector(seed uint64, quota map[string]int) *injector {
	return &injector{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), quota: quota, fired: map[string]int{}}
}

// decide reports whether a fault of kind fires now (with probability p) and
// whether it is a panic rather than an error (when panics are allowed).
func (in *injector) decide(kind string, p float64, panics bool) (fire, panic bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.fired[kind] >= in.quota[kind] || in.rng.Float64() >= p {
		return false, false
	}
	in.fired[kind]++
	return true, panics && in.rng.IntN(2) == 0
}

// fault returns an injected error, or panics, if a fault fires.
func (in *injector) fault(kind string, p float64, panics bool) error {
	fire, pnc := in.decide(kind, p, panics)
	if !fire {
		return nil
	}
	if pnc {
		panic(fmt.Sprintf("injected panic: %s", kind))
	}
	return fmt.Errorf("%w: %s", errInjected, kind)
}

// hook adapts the injector to the engine's protocol points.
func (in *injector) hook(p float64) engine.FaultHook {
	return func(point engine.FaultPoint, task checkpoint.TaskID, id uint64) error {
		// A panic in the coordinator loop or the upload worker is as
		// fatal as one in a subtask; errors there decline or fail.
		return in.fault(string(point), p, true)
	}
}

func (in *injector) total() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	n := 0
	for _, v := range in.fired {
		n += v
	}
	return n
}

func (in *injector) missing() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var out []string
	for k, q := range in.quota {
		if in.fired[k] < q {
			out = append(out, fmt.Sprintf("%s %d/%d", k, in.fired[k], q))
		}
	}
	sort.Strings(out)
	return out
}

func (in *injector) String() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	var parts []string
	for k, v := range in.fired {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// flakyStore fails uploads of state objects (not manifests) on demand: the
// checkpoint must be declined and the job go on.
type flakyStore struct {
	checkpoint.Store
	in *injector
	p  float64
}

func (s *flakyStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if strings.Contains(name, "/data/") {
		if err := s.in.fault("store-put", s.p, false); err != nil {
			return err
		}
	}
	return s.Store.Put(ctx, name, r, size)
}
