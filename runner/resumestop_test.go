package runner

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/internal/proctest"
)

// TestStopResumedAfterRunnerRestart: a runner that dies during a stop with
// savepoint leaves the job STOPPING in its table (the job process dies with
// it). The next runner starts the job again and finishes the stop: the job
// ends STOPPED with a new savepoint.
func TestStopResumedAfterRunnerRestart(t *testing.T) {
	bin := proctest.Build(t, "github.com/onceflow/onceflow/examples/keyedcount")
	dir := t.TempDir()
	r := openTest(t, dir)
	id := submit(t, r, SubmitRequest{Path: bin, Config: map[string]string{"checkpoint-interval": "100ms"},
		Args: []string{"-records", "100000000", "-rate", "2000", "-state", "memory", "-verify=false", "-out", filepath.Join(dir, "out")}})
	deadline := time.Now().Add(time.Minute)
	for v, _ := r.Get(id); v.State != StateRunning || v.CheckpointsCompleted == 0; v, _ = r.Get(id) {
		if time.Now().After(deadline) {
			t.Fatalf("job not running with a checkpoint: %s (%s)\n%s", v.State, v.Reason, v.OutputTail)
		}
		time.Sleep(20 * time.Millisecond) // no event tells when a status arrived
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	// What a runner killed during the stop leaves: the job STOPPING.
	path := filepath.Join(dir, "jobs.json")
	tbl, err := loadTable(path)
	if err != nil {
		t.Fatal(err)
	}
	tbl.Jobs[0].State = StateStopping
	data, _ := json.Marshal(tbl)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}

	r = openTest(t, dir)
	defer r.Close()
	v := waitState(t, r, id, StateStopped)
	if v.LastSavepoint == "" || v.StopRequestedAt != nil || v.ProcessRestarts != 1 {
		t.Fatalf("after the resumed stop: %+v", v.Job)
	}
	pts, err := r.Points(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range pts {
		found = found || p.Path == v.LastSavepoint && p.Kind == "savepoint"
	}
	if !found || !strings.HasPrefix(v.LastSavepoint, id+"/keyedcount/savepoints/") {
		t.Fatalf("savepoint %q not among the job's restore points %+v", v.LastSavepoint, pts)
	}
}
