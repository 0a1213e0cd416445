package kafkajob

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// KillEnv names the variable that makes a job binary SIGKILL itself at a
// protocol point: "before-notify:3" kills at the third time the coordinator
// reaches before-notify (after a manifest is durable, before any sink
// commits); several points may be given, comma-separated. Points are
// engine.FaultPoint names: snapshot, upload, pre-commit, commit,
// before-notify.
const KillEnv = "ONCEFLOW_TEST_KILL_AT"

// KillHook returns the fault hook that KillEnv asks for, or nil when it is
// unset.
func KillHook() (engine.FaultHook, error) {
	spec := os.Getenv(KillEnv)
	if spec == "" {
		return nil, nil
	}
	at := map[engine.FaultPoint]int{}
	for part := range strings.SplitSeq(spec, ",") {
		point, n, ok := strings.Cut(part, ":")
		count, err := strconv.Atoi(n)
		if !ok || err != nil || count < 1 {
			return nil, fmt.Errorf("%s=%q: want point:N[,point:N], N >= 1", KillEnv, spec)
		}
		at[engine.FaultPoint(point)] = count
	}
	var mu sync.Mutex
	seen := map[engine.FaultPoint]int{}
	return func(p engine.FaultPoint, task checkpoint.TaskID, id uint64) error {
		mu.Lock()
		defer mu.Unlock()
		want, ok := at[p]
		if !ok {
			return nil
		}
		if seen[p]++; seen[p] == want {
			// Say where, for the test's log, then die as abruptly as a
			// power cut: no deferred function, no flush, no goodbye.
			fmt.Fprintf(os.Stderr, "kafkajob: SIGKILL at %s #%d (checkpoint %d, %s)\n", p, want, id, task)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns: the signal is on its way
		}
		return nil
	}, nil
}
