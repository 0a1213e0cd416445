package engine

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// RestartKind selects a restart strategy.
type RestartKind int

const (
	RestartNone RestartKind = iota + 1
	RestartFixedDelay
	RestartExponentialBackoff
	RestartFailureRate
)

// RestartStrategy decides whether a failed job restarts and after how long.
// Build one with NoRestart, FixedDelayRestart, ExponentialBackoffRestart or
// FailureRateRestart.
type RestartStrategy struct {
	Kind RestartKind
	// MaxRestarts for fixed delay; negative means unlimited.
	MaxRestarts int
	// Delay for fixed delay and failure rate.
	Delay time.Duration
	// Exponential backoff: Initial doubled (Multiplier) up to Max, each delay
	// randomized by +-Jitter (0..1); the backoff resets after the job ran
	// ResetAfter without failing.
	Initial, Max time.Duration
	Multiplier   float64
	Jitter       float64
	ResetAfter   time.Duration
	// Failure rate: more than MaxFailures within Interval stops restarting.
	MaxFailures int
	Interval    time.Duration
}

// NoRestart fails the job at its first failure.
func NoRestart() RestartStrategy { return RestartStrategy{Kind: RestartNone} }

// FixedDelayRestart restarts up to maxRestarts times (negative: unlimited).
func FixedDelayRestart(maxRestarts int, delay time.Duration) RestartStrategy {
	return RestartStrategy{Kind: RestartFixedDelay, MaxRestarts: maxRestarts, Delay: delay}
}

// ExponentialBackoffRestart restarts forever with growing, jittered delays.
func ExponentialBackoffRestart(initial, max time.Duration, multiplier, jitter float64, resetAfter time.Duration) RestartStrategy {
	return RestartStrategy{Kind: RestartExponentialBackoff, Initial: initial, Max: max, Multiplier: multiplier, Jitter: jitter, ResetAfter: resetAfter}
}

// FailureRateRestart restarts after delay unless more than maxFailures
// happened within interval.
func FailureRateRestart(maxFailures int, interval, delay time.Duration) RestartStrategy {
	return RestartStrategy{Kind: RestartFailureRate, MaxFailures: maxFailures, Interval: interval, Delay: delay}
}

func (s RestartStrategy) validate() error {
	switch s.Kind {
	case 0, RestartNone:
	case RestartFixedDelay:
		if s.Delay < 0 {
			return fmt.Errorf("restart strategy: fixed delay %v must not be negative", s.Delay)
		}
	case RestartExponentialBackoff:
		if s.Initial <= 0 || s.Max < s.Initial || s.Multiplier < 1 || s.Jitter < 0 || s.Jitter > 1 {
			return fmt.Errorf("restart strategy: exponential backoff needs 0 < initial (%v) <= max (%v), multiplier >= 1 (%v), jitter in [0,1] (%v)", s.Initial, s.Max, s.Multiplier, s.Jitter)
		}
	case RestartFailureRate:
		if s.MaxFailures < 1 || s.Interval <= 0 || s.Delay < 0 {
			return fmt.Errorf("restart strategy: failure rate needs max failures >= 1 (%d), interval > 0 (%v), delay >= 0 (%v)", s.MaxFailures, s.Interval, s.Delay)
		}
	default:
		return fmt.Errorf("restart strategy: unknown kind %d", s.Kind)
	}
	return nil
}

func (s RestartStrategy) String() string {
	switch s.Kind {
	case RestartNone:
		return "none"
	case RestartFixedDelay:
		return fmt.Sprintf("fixed-delay(max=%d, delay=%v)", s.MaxRestarts, s.Delay)
	case RestartExponentialBackoff:
		return fmt.Sprintf("exponential-backoff(initial=%v, max=%v, x%g, jitter=%g)", s.Initial, s.Max, s.Multiplier, s.Jitter)
	case RestartFailureRate:
		return fmt.Sprintf("failure-rate(%d per %v, delay=%v)", s.MaxFailures, s.Interval, s.Delay)
	}
	return "unset"
}

// ParseRestartStrategy reads "none", "fixed:MAX:DELAY" (MAX -1 = unlimited),
// "exponential:INITIAL:MAX" or "failure-rate:N:INTERVAL:DELAY".
func ParseRestartStrategy(text string) (RestartStrategy, error) {
	parts := strings.Split(text, ":")
	bad := func(why string) (RestartStrategy, error) {
		return RestartStrategy{}, fmt.Errorf("restart strategy %q: %s (want none | fixed:MAX:DELAY | exponential:INITIAL:MAX | failure-rate:N:INTERVAL:DELAY)", text, why)
	}
	dur := func(i int) (time.Duration, bool) {
		d, err := time.ParseDuration(parts[i])
		return d, err == nil
	}
	var s RestartStrategy
	switch parts[0] {
	case "none":
		if len(parts) != 1 {
			return bad("none takes no arguments")
		}
		s = NoRestart()
	case "fixed":
		if len(parts) != 3 {
			return bad("fixed takes MAX and DELAY")
		}
		n, err := strconv.Atoi(parts[1])
		d, ok := dur(2)
		if err != nil || !ok {
			return bad("MAX must be an integer and DELAY a duration")
		}
		s = FixedDelayRestart(n, d)
	case "exponential":
		if len(parts) != 3 {
			return bad("exponential takes INITIAL and MAX")
		}
		a, ok1 := dur(1)
		b, ok2 := dur(2)
		if !ok1 || !ok2 {
			return bad("INITIAL and MAX must be durations")
		}
		s = ExponentialBackoffRestart(a, b, 2, 0.1, 10*b)
	case "failure-rate":
		if len(parts) != 4 {
			return bad("failure-rate takes N, INTERVAL and DELAY")
		}
		n, err := strconv.Atoi(parts[1])
		iv, ok1 := dur(2)
		d, ok2 := dur(3)
		if err != nil || !ok1 || !ok2 {
			return bad("N must be an integer, INTERVAL and DELAY durations")
		}
		s = FailureRateRestart(n, iv, d)
	default:
		return bad("unknown strategy")
	}
	return s, s.validate()
}

// restarter applies a strategy over one Run.
type restarter struct {
	s        RestartStrategy
	restarts int
	failures []time.Time
	backoff  time.Duration
	last     time.Time
	rand     func() float64
}

func newRestarter(s RestartStrategy) *restarter {
	return &restarter{s: s, rand: rand.Float64}
}

// next is asked after a failure at now: the delay before restarting, or
// ok=false to give up.
func (r *restarter) next(now time.Time) (time.Duration, bool) {
	defer func() { r.last = now }()
	switch r.s.Kind {
	case RestartFixedDelay:
		if r.s.MaxRestarts >= 0 && r.restarts >= r.s.MaxRestarts {
			return 0, false
		}
		r.restarts++
		return r.s.Delay, true
	case RestartExponentialBackoff:
		r.restarts++
		if r.backoff == 0 || (r.s.ResetAfter > 0 && now.Sub(r.last) >= r.s.ResetAfter) {
			r.backoff = r.s.Initial
		} else {
			r.backoff = min(time.Duration(float64(r.backoff)*r.s.Multiplier), r.s.Max)
		}
		jitter := 1 + r.s.Jitter*(2*r.rand()-1)
		return time.Duration(float64(r.backoff) * jitter), true
	case RestartFailureRate:
		r.failures = append(r.failures, now)
		for len(r.failures) > 0 && now.Sub(r.failures[0]) > r.s.Interval {
			r.failures = r.failures[1:]
		}
		if len(r.failures) > r.s.MaxFailures {
			return 0, false
		}
		r.restarts++
		return r.s.Delay, true
	}
	return 0, false
}
