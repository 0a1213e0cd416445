package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

func TestCommittableRoundTrip(t *testing.T) {
	for _, c := range []committable{
		{TxnID: "job-out-0-0", ProducerID: 0, Epoch: 0},
		{TxnID: "p-o-12-7", ProducerID: 1<<62 + 5, Epoch: 32766},
		{TxnID: "x", ProducerID: -1, Epoch: -1},
		{TxnID: "job-out-0-0", ProducerID: 3, Epoch: 1, First: recordPos{Topic: "out", Partition: 0, Offset: 0}},
		{TxnID: "p-o-12-7", ProducerID: 1<<62 + 5, Epoch: 32766, First: recordPos{Topic: "t.x_y", Partition: 1<<31 - 1, Offset: 1<<62 + 1}},
	} {
		got, err := decodeCommittable(c.encode())
		if err != nil || got != c {
			t.Errorf("round trip of %v: got %v, %v", c, got, err)
		}
	}
	for _, bad := range [][]byte{nil, {}, {3}, {1}, {1, 0}, {1, 0, 0}, {1, 0, 0, 5, 'a'}, {1, 0, 0, 0}, {1, 0, 0, 1, 'a', 0},
		{2, 0, 0, 1, 'a'}, {2, 0, 0, 1, 'a', 0, 0, 0}, {2, 0, 0, 1, 'a', 1, 't', 1, 0}, {2, 0, 0, 1, 'a', 1, 't', 0, 1},
		{2, 0, 0, 1, 'a', 1, 't', 0, 0, 0}} {
		if _, err := decodeCommittable(bad); !errors.Is(err, errBadCommittable) {
			t.Errorf("decode %v: %v, want errBadCommittable", bad, err)
		}
	}
}

// TestCommittableVersions pins the encodings: committables in existing
// checkpoints (version 1, without the first record) must keep decoding, and
// are then committed without the identity check, as when they were written.
func TestCommittableVersions(t *testing.T) {
	v1 := []byte{1, 14, 6, 11, 'j', 'o', 'b', '-', 'o', 'u', 't', '-', '0', '-', '2'}
	want := committable{TxnID: "job-out-0-2", ProducerID: 7, Epoch: 3}
	if got, err := decodeCommittable(v1); err != nil || got != want || got.First.known() {
		t.Fatalf("version 1: got %+v, %v; want %+v without a first record", got, err, want)
	}
	if got := want.encode(); !bytes.Equal(got, v1) {
		t.Fatalf("a committable without a first record encodes as %v, want version 1 %v", got, v1)
	}
	want.First = recordPos{Topic: "out", Partition: 1, Offset: 1000}
	v2 := append([]byte{2}, v1[1:]...)
	v2 = append(v2, 3, 'o', 'u', 't', 2, 0xd0, 0x0f)
	if got, err := decodeCommittable(v2); err != nil || got != want {
		t.Fatalf("version 2: got %+v, %v; want %+v", got, err, want)
	}
	if got := want.encode(); !bytes.Equal(got, v2) {
		t.Fatalf("encoding %+v: %v, want %v", want, got, v2)
	}
}

func FuzzDecodeCommittable(f *testing.F) {
	f.Add(committable{TxnID: "a-b-0-1", ProducerID: 7, Epoch: 3}.encode())
	f.Add(committable{TxnID: "a-b-0-1", ProducerID: 7, Epoch: 3, First: recordPos{Topic: "t", Partition: 2, Offset: 99}}.encode())
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeCommittable(b)
		if err != nil {
			return
		}
		again, err := decodeCommittable(c.encode())
		if err != nil || again != c {
			t.Fatalf("re-encoding %v: %v, %v", c, again, err)
		}
	})
}

func TestPositionRoundTrip(t *testing.T) {
	for _, c := range []struct {
		split string
		pos   position
	}{
		{"events/0", position{next: 0, stop: noStop}},
		{"a.b_c-d/17", position{next: offsetEarliest, stop: 1000}},
		{"t/2147483647", position{next: 1 << 40, stop: 1<<40 + 1}},
	} {
		part, pos, err := decodePosition(checkpoint.SourcePosition{Split: c.split, Position: c.pos.encode()})
		if err != nil || part.String() != c.split || pos != c.pos {
			t.Errorf("%s %+v: got %s %+v %v", c.split, c.pos, part, pos, err)
		}
	}
	for _, bad := range []checkpoint.SourcePosition{
		{Split: "nopartition", Position: position{}.encode()},
		{Split: "t/-1", Position: position{}.encode()},
		{Split: "t/x", Position: position{}.encode()},
		{Split: "t/0", Position: nil},
		{Split: "t/0", Position: []byte{1, 0}},
		{Split: "t/0", Position: append(position{}.encode(), 0)},
		{Split: "t/0", Position: position{next: -3, stop: 0}.encode()},
	} {
		if _, _, err := decodePosition(bad); err == nil {
			t.Errorf("decode %+v: no error", bad)
		}
	}
}

func TestTxnIDs(t *testing.T) {
	n := newTxnIDs("job", "out")
	id := n.id(12, 3)
	if id != "job-out-12-3" {
		t.Fatalf("id = %q", id)
	}
	if j, k, ok := n.parse(id); !ok || j != 12 || k != 3 {
		t.Fatalf("parse(%q) = %d %d %v", id, j, k, ok)
	}
	// Ids of another operator whose name extends this one, of other jobs,
	// and malformed ones are not ours.
	for _, other := range []string{"job-out-2-0-1", "job-out2-0-1", "jo-out-1-1", "job-out-1", "job-out-a-1", "job-out-01-1", "job-out--1-1", "job-out-1-+1"} {
		if _, _, ok := n.parse(other); ok {
			t.Errorf("parse(%q) accepted a foreign id", other)
		}
	}
	if owner(5, 2) != 1 || owner(1, 2) != 1 || owner(4, 4) != 0 {
		t.Fatal("owner must follow the engine: old subtask j goes to j mod p")
	}
}

func TestAssignment(t *testing.T) {
	// Every partition has exactly one owner, the load is even, and the
	// answer depends only on the arguments.
	for _, p := range []int{1, 2, 3, 7} {
		load := make([]int, p)
		for _, topic := range []string{"a", "orders", "clicks"} {
			for part := int32(0); part < 12; part++ {
				o := assignedTo(topic, part, p)
				if o < 0 || o >= p || o != assignedTo(topic, part, p) {
					t.Fatalf("assignedTo(%s, %d, %d) = %d", topic, part, p, o)
				}
				load[o]++
			}
		}
		for i, l := range load {
			if l < 36/p-1 || l > 36/p+1 {
				t.Errorf("p=%d: subtask %d reads %d of 36 partitions", p, i, l)
			}
		}
	}
	counts := map[string]int32{"a": 5, "b": 3}
	var all []tp
	for i := 0; i < 3; i++ {
		all = append(all, ownedPartitions([]string{"a", "b"}, counts, i, 3)...)
	}
	if len(all) != 8 {
		t.Fatalf("owned partitions over 3 subtasks: %d, want 8", len(all))
	}
}

func TestTransactionTimeoutCheck(t *testing.T) {
	timing := engine.CheckpointTiming{Interval: time.Second, Timeout: time.Minute, TolerableFailures: 1, MaxRestartDelay: 10 * time.Second}
	// 2 x 61s + 10s + 1m = 3m12s
	if err := checkTransactionTimeout(3*time.Minute, time.Minute, timing); err == nil || !strings.Contains(err.Error(), "3m12s") {
		t.Fatalf("3m: %v", err)
	}
	if err := checkTransactionTimeout(4*time.Minute, time.Minute, timing); err != nil {
		t.Fatal(err)
	}
}

func TestWatermarkIdleness(t *testing.T) {
	cfg := &SourceConfig[string, string]{MaxOutOfOrderness: time.Second, IdleTimeout: time.Minute}
	r := &reader[string, string]{cfg: cfg, started: time.Now(), parts: map[tp]*partState{}}
	if _, ok := r.Watermark(); ok {
		t.Fatal("a reader without partitions has no watermark before the idle timeout")
	}
	a := &partState{tp: tp{"t", 0}}
	b := &partState{tp: tp{"t", 1}}
	r.add(a)
	r.add(b)
	a.wm.observe(10_000)
	if _, ok := r.Watermark(); ok {
		t.Fatal("partition 1 has no timestamp yet: no watermark")
	}
	b.wm.observe(20_000)
	if wm, ok := r.Watermark(); !ok || wm != 10_000-1000-1 {
		t.Fatalf("watermark %d %v, want the lowest partition's minus out-of-orderness", wm, ok)
	}
	// Partition 0 goes quiet: after the idle timeout it follows the clock.
	a.wm.lastActive = time.Now().Add(-2 * time.Minute)
	if wm, ok := r.Watermark(); !ok || wm != 20_000-1000-1 {
		t.Fatalf("watermark %d %v, want partition 1's once partition 0 is idle", wm, ok)
	}
	r.finish(b)
	b.wm.lastActive = time.Now().Add(-2 * time.Minute)
	if wm, ok := r.Watermark(); !ok || wm < time.Now().Add(-time.Minute-2*time.Second).UnixMilli() {
		t.Fatalf("watermark %d %v, want about now minus the idle timeout", wm, ok)
	}
}

// TestBuildAllAppends: records built from appending serializers share one
// buffer, yet each holds exactly its own bytes, and appending to one (a
// client or an interceptor might) cannot overwrite the next.
func TestBuildAllAppends(t *testing.T) {
	cfg := &SinkConfig[int]{
		Topic: "t",
		Key:   AppendSerializerFunc[int](func(dst []byte, _ string, v int) ([]byte, error) { return fmt.Appendf(dst, "k%d", v), nil }),
		Value: SerializerFunc[int](func(_ string, v int) ([]byte, error) { return fmt.Appendf(nil, "value-%d", v), nil }),
	}
	b := recordBuilder[int]{cfg: cfg}
	for round := 0; round < 2; round++ { // the second starts with the first's buffer size
		vs := make([]int, 300)
		for i := range vs {
			vs[i] = i * 1000
		}
		sl, err := b.buildAll(vs, newResults())
		if err != nil {
			t.Fatal(err)
		}
		rs := sl.recs
		_ = append(rs[0].Key, "XXXXXXXX"...)
		for i, r := range rs {
			if string(r.Key) != fmt.Sprintf("k%d", vs[i]) || string(r.Value) != fmt.Sprintf("value-%d", vs[i]) || r.Topic != "t" {
				t.Fatalf("round %d record %d: key %q value %q topic %q", round, i, r.Key, r.Value, r.Topic)
			}
		}
	}
	failing := recordBuilder[int]{cfg: &SinkConfig[int]{Topic: "t", Value: AppendSerializerFunc[int](func(dst []byte, _ string, v int) ([]byte, error) {
		if v == 2 {
			return dst, errors.New("no")
		}
		return append(dst, 'x'), nil
	})}}
	if _, err := failing.buildAll([]int{1, 2, 3}, newResults()); err == nil || !strings.Contains(err.Error(), "serialize value for topic t: no") {
		t.Fatalf("err = %v", err)
	}
}

// TestSlabRecycling: a batch's slab serves a later batch only once every
// promise of its records ran, and comes back with no trace of its records.
func TestSlabRecycling(t *testing.T) {
	cfg := &SinkConfig[int]{
		Topic:   "t",
		Value:   AppendSerializerFunc[int](func(dst []byte, _ string, v int) ([]byte, error) { return fmt.Appendf(dst, "v%d", v), nil }),
		Headers: func(v int) []Header { return []Header{{Key: "h", Value: []byte(fmt.Sprint(v))}} },
	}
	b := recordBuilder[int]{cfg: cfg}
	res := newResults()
	first, err := b.buildAll([]int{1, 2, 3}, res)
	if err != nil {
		t.Fatal(err)
	}
	first.promise(&first.recs[0], nil)
	first.promise(&first.recs[1], nil)
	second, err := b.buildAll([]int{4}, res)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("a slab with a promise still to run was reused")
	}
	first.promise(&first.recs[2], nil)
	third, err := b.buildAll([]int{5, 6}, res)
	if err != nil {
		t.Fatal(err)
	}
	if third != first {
		t.Fatal("an acknowledged slab was not reused")
	}
	for i, want := range []int{5, 6} {
		r := third.recs[i]
		if string(r.Value) != fmt.Sprintf("v%d", want) || len(r.Headers) != 1 || string(r.Headers[0].Value) != fmt.Sprint(want) {
			t.Fatalf("record %d: value %q headers %v", i, r.Value, r.Headers)
		}
	}
	if res.acked != 3 {
		t.Fatalf("results saw %d acknowledgements, want 3", res.acked)
	}
}

// TestBuildAllTimestamps: a record's timestamp is the batch's build time in
// milliseconds unless the sink's Timestamp gives one.
func TestBuildAllTimestamps(t *testing.T) {
	value := SerializerFunc[int](func(_ string, v int) ([]byte, error) { return []byte{byte(v)}, nil })
	b := recordBuilder[int]{cfg: &SinkConfig[int]{Topic: "t", Value: value}}
	before := time.Now().Truncate(time.Millisecond)
	sl, err := b.buildAll([]int{1, 2}, newResults())
	after := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range sl.recs {
		if ts := r.Timestamp; ts.Before(before) || ts.After(after) || !ts.Equal(ts.Truncate(time.Millisecond)) {
			t.Fatalf("record %d: timestamp %v, want a millisecond in [%v, %v]", i, ts, before, after)
		}
	}
	given := recordBuilder[int]{cfg: &SinkConfig[int]{Topic: "t", Value: value, Timestamp: func(v int) time.Time { return time.UnixMilli(int64(v)) }}}
	if sl, err = given.buildAll([]int{7}, newResults()); err != nil {
		t.Fatal(err)
	}
	if got := sl.recs[0].Timestamp; !got.Equal(time.UnixMilli(7)) {
		t.Fatalf("timestamp %v, want the sink's %v", got, time.UnixMilli(7))
	}
}
