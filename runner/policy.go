package runner

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

// DefaultRestart is the process restart policy of a job that sets none.
const DefaultRestart = "exponential:500ms:30s"

// restartPolicy decides whether and when a crashed job process starts again.
// It counts consecutive failures; the supervisor resets the count once a
// process makes progress (completes a checkpoint), so that a job that fails
// now and then restarts quickly and a crash-looping one backs off.
//
//	none                    never restart: the job fails
//	fixed:MAX:DELAY         at most MAX consecutive restarts (-1 = no limit), DELAY apart
//	exponential:INITIAL:MAX no limit; INITIAL doubling up to MAX, with 10% jitter
type restartPolicy struct {
	kind       string
	max        int
	delay, cap time.Duration
}

func parseRestartPolicy(s string) (restartPolicy, error) {
	parts := strings.Split(s, ":")
	bad := func(why string) (restartPolicy, error) {
		return restartPolicy{}, fmt.Errorf("restart policy %q: %s (want none, fixed:MAX:DELAY or exponential:INITIAL:MAX)", s, why)
	}
	switch parts[0] {
	case "none":
		if len(parts) != 1 {
			return bad("none takes no parameters")
		}
		return restartPolicy{kind: "none"}, nil
	case "fixed":
		if len(parts) != 3 {
			return bad("fixed takes MAX and DELAY")
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < -1 {
			return bad("MAX must be an integer >= -1")
		}
		d, err := time.ParseDuration(parts[2])
		if err != nil || d < 0 {
			return bad("DELAY must be a non-negative duration")
		}
		return restartPolicy{kind: "fixed", max: n, delay: d}, nil
	case "exponential":
		if len(parts) != 3 {
			return bad("exponential takes INITIAL and MAX")
		}
		initial, err1 := time.ParseDuration(parts[1])
		cap, err2 := time.ParseDuration(parts[2])
		if err1 != nil || err2 != nil || initial <= 0 || cap < initial {
			return bad("INITIAL and MAX must be durations with 0 < INITIAL <= MAX")
		}
		return restartPolicy{kind: "exponential", max: -1, delay: initial, cap: cap}, nil
	}
	return bad("unknown kind " + strconv.Quote(parts[0]))
}

// next returns the delay before restart number failures (1 = after the
// first failure in a row), or false when the policy gives up.
func (p restartPolicy) next(failures int) (time.Duration, bool) {
	switch p.kind {
	case "fixed":
		if p.max >= 0 && failures > p.max {
			return 0, false
		}
		return p.delay, true
	case "exponential":
		d := p.delay
		for i := 1; i < failures && d < p.cap; i++ {
			d *= 2
		}
		d = min(d, p.cap)
		jitter := time.Duration(rand.Int64N(int64(d)/5+1)) - d/10
		return max(d+jitter, 0), true
	}
	return 0, false
}
