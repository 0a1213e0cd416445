package kafka

import (
	"fmt"
	"strconv"
	"strings"
)

// txnIDs names the transactional ids of one sink operator:
// "<prefix>-<operator>-<subtask>-<slot>". The operator name keeps two sinks
// of a job from sharing ids under one prefix; subtask and slot come last so
// that ids of any earlier parallelism can be parsed back and their owner
// found.
type txnIDs struct {
	stem string // "<prefix>-<operator>-"
}

func newTxnIDs(prefix, operator string) txnIDs {
	return txnIDs{stem: prefix + "-" + operator + "-"}
}

func (n txnIDs) id(subtask, slot int) string {
	return n.stem + strconv.Itoa(subtask) + "-" + strconv.Itoa(slot)
}

// parse returns the subtask and slot of an id of this operator, ok=false for
// any other id (another job, operator or a foreign producer).
func (n txnIDs) parse(id string) (subtask, slot int, ok bool) {
	rest, found := strings.CutPrefix(id, n.stem)
	if !found {
		return 0, 0, false
	}
	a, b, found := strings.Cut(rest, "-")
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.Atoi(a)
	k, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || s < 0 || k < 0 || strconv.Itoa(s) != a || strconv.Itoa(k) != b {
		return 0, 0, false
	}
	return s, k, true
}

// owner reports whether subtask i of parallelism p owns the ids of old
// subtask j: the engine gives old subtask j's committables to j mod p, so
// the same subtask must clean up j's other transactions.
func owner(j, p int) int { return j % p }

func (n txnIDs) String() string { return fmt.Sprintf("%s<subtask>-<slot>", n.stem) }
