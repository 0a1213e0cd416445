package runner

import (
	"testing"
	"time"
)

func TestRestartPolicy(t *testing.T) {
	for _, bad := range []string{"", "always", "none:1", "fixed:1", "fixed:-2:1s", "fixed:1:x", "exponential:0s:1s", "exponential:2s:1s", "exponential:1s"} {
		if _, err := parseRestartPolicy(bad); err == nil {
			t.Errorf("parseRestartPolicy(%q) accepted", bad)
		}
	}
	p, err := parseRestartPolicy("fixed:2:50ms")
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]bool{1: true, 2: true, 3: false} {
		if d, ok := p.next(n); ok != want || (ok && d != 50*time.Millisecond) {
			t.Errorf("fixed:2:50ms next(%d) = %v %v", n, d, ok)
		}
	}
	if _, ok := mustPolicy(t, "none").next(1); ok {
		t.Error("none restarts")
	}
	e := mustPolicy(t, "exponential:100ms:1s")
	prev := time.Duration(0)
	for n := 1; n <= 10; n++ {
		d, ok := e.next(n)
		if !ok || d < 90*time.Millisecond || d > 1100*time.Millisecond {
			t.Fatalf("exponential next(%d) = %v %v", n, d, ok)
		}
		if n <= 4 && d <= prev*3/2 { // doubles (give or take the jitter)
			t.Errorf("exponential next(%d) = %v after %v: not backing off", n, d, prev)
		}
		prev = d
	}
}

func mustPolicy(t *testing.T, s string) restartPolicy {
	t.Helper()
	p, err := parseRestartPolicy(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
