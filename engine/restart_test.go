package engine

import (
	"strings"
	"testing"
	"time"
)

func TestRestartStrategies(t *testing.T) {
	t0 := time.Unix(1000, 0)
	fixed := newRestarter(FixedDelayRestart(2, time.Second))
	for i, want := range []bool{true, true, false} {
		if d, ok := fixed.next(t0); ok != want || (ok && d != time.Second) {
			t.Fatalf("fixed #%d: %v %v", i, d, ok)
		}
	}
	if _, ok := newRestarter(NoRestart()).next(t0); ok {
		t.Fatal("none restarted")
	}
	rate := newRestarter(FailureRateRestart(2, time.Minute, 0))
	for i, at := range []time.Duration{0, 10 * time.Second, 2 * time.Minute, 2*time.Minute + time.Second} {
		if _, ok := rate.next(t0.Add(at)); !ok {
			t.Fatalf("failure rate gave up at failure %d (old failures must age out)", i)
		}
	}
	if _, ok := rate.next(t0.Add(2*time.Minute + 2*time.Second)); ok {
		t.Fatal("failure rate: 3 failures within a minute must stop restarting")
	}
	exp := newRestarter(ExponentialBackoffRestart(time.Second, 5*time.Second, 2, 0, time.Hour))
	var got []time.Duration
	for i := 0; i < 5; i++ {
		d, _ := exp.next(t0.Add(time.Duration(i) * time.Second))
		got = append(got, d)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("backoff %v, want %v", got, want)
		}
	}
	if d, _ := exp.next(t0.Add(2 * time.Hour)); d != time.Second {
		t.Fatalf("backoff after a long healthy run: %v, want reset to 1s", d)
	}
	jit := newRestarter(ExponentialBackoffRestart(time.Second, time.Second, 2, 0.5, 0))
	jit.rand = func() float64 { return 1 }
	if d, _ := jit.next(t0); d != 1500*time.Millisecond {
		t.Fatalf("jitter: %v", d)
	}
}

func TestParseRestartStrategy(t *testing.T) {
	for in, want := range map[string]string{
		"none":                 "none",
		"fixed:-1:1s":          "fixed-delay(max=-1, delay=1s)",
		"exponential:1s:30s":   "exponential-backoff(initial=1s, max=30s, x2, jitter=0.1)",
		"failure-rate:3:1m:2s": "failure-rate(3 per 1m0s, delay=2s)",
	} {
		s, err := ParseRestartStrategy(in)
		if err != nil || s.String() != want {
			t.Errorf("%q: %v %v, want %s", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "fixed", "fixed:x:1s", "exponential:2s:1s", "failure-rate:0:1m:1s", "sometimes"} {
		if _, err := ParseRestartStrategy(bad); err == nil || !strings.Contains(err.Error(), "restart strategy") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}
