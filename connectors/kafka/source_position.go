package kafka

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/onceflow/onceflow/checkpoint"
)

// tp is a topic partition: one split of the source.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return p.topic + "/" + strconv.Itoa(int(p.partition)) }

func parseSplit(s string) (tp, error) {
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return tp{}, fmt.Errorf("kafka source: restored split %q is not topic/partition", s)
	}
	n, err := strconv.ParseInt(s[i+1:], 10, 32)
	if err != nil || n < 0 {
		return tp{}, fmt.Errorf("kafka source: restored split %q has no valid partition", s)
	}
	return tp{topic: s[:i], partition: int32(n)}, nil
}

const (
	// offsetEarliest is the position of a partition nothing was read from
	// yet that starts at its earliest record: a restore starts at whatever
	// is earliest then, which is what an uninterrupted run would have read.
	offsetEarliest = -2
	// noStop marks an unbounded partition.
	noStop = -1
	// positionVersion prefixes the encoding.
	positionVersion = 1
)

// position is a partition's place in a checkpoint: the next offset to read
// (every offset before it has been emitted or skipped as a control or bad
// record) and, for bounded sources, where it stops.
type position struct {
	next int64
	stop int64
}

func (p position) encode() []byte {
	b := []byte{positionVersion}
	b = binary.AppendVarint(b, p.next)
	return binary.AppendVarint(b, p.stop)
}

func decodePosition(sp checkpoint.SourcePosition) (tp, position, error) {
	part, err := parseSplit(sp.Split)
	if err != nil {
		return tp{}, position{}, err
	}
	b := sp.Position
	bad := fmt.Errorf("kafka source: restored position of %s is malformed", part)
	if len(b) == 0 || b[0] != positionVersion {
		return tp{}, position{}, bad
	}
	b = b[1:]
	next, n := binary.Varint(b)
	if n <= 0 {
		return tp{}, position{}, bad
	}
	b = b[n:]
	stop, n := binary.Varint(b)
	if n <= 0 || n != len(b) || next < offsetEarliest || stop < noStop {
		return tp{}, position{}, bad
	}
	return part, position{next: next, stop: stop}, nil
}
