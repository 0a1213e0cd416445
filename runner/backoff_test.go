package runner

import (
	"testing"
	"time"
)

// TestBackoffSurvivesRunnerRestart: a restart waiting out its backoff when
// the runner closes is not started at once by the next runner, but at the
// time the first one set.
func TestBackoffSurvivesRunnerRestart(t *testing.T) {
	dir := t.TempDir()
	r := openTest(t, dir)
	id := submit(t, r, SubmitRequest{Path: script(t, "exit 4"), Restart: "fixed:-1:3s"})
	v := waitState(t, r, id, StateRestarting)
	if v.NextStartAt == nil || v.Starts != 1 {
		t.Fatalf("restarting job: %+v", v.Job)
	}
	next := *v.NextStartAt
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	r = openTest(t, dir)
	defer r.Close()
	if v, _ := r.Get(id); v.State != StateRestarting || v.NextStartAt == nil || !v.NextStartAt.Equal(next) {
		t.Fatalf("after the runner restart: %+v, want RESTARTING until %s", v.Job, next)
	}
	// Wait for the second process; it must not have started before next.
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, _ := r.Get(id)
		if v.Starts >= 2 {
			if v.StartedAt == nil || v.StartedAt.Before(next) {
				t.Fatalf("second process started at %v, before its backoff ended at %s", v.StartedAt, next)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not restarted after its backoff: %+v", v.Job)
		}
		time.Sleep(10 * time.Millisecond) // no event tells when a supervisor moved on
	}
}
