package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/connectors/kafka/devbroker"
)

// Internal tests cannot use internal/testenv (it imports this package), so
// they start their own embedded broker.
func startBroker(t *testing.T, version string) []string {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{DataDir: t.TempDir(), KafkaVersion: version, Topics: map[string]int32{"t": 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

func adminClient(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := newClient(brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// openTxn writes n records into a new transaction on id and returns the
// client (still in the transaction) and its committable.
func openTxn(t *testing.T, cl *kgo.Client, id string, n int) committable {
	t.Helper()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	res := newResults()
	for i := 0; i < n; i++ {
		cl.Produce(context.Background(), &kgo.Record{Topic: "t", Value: []byte(id + "-" + strconv.Itoa(i))}, res.promise)
	}
	if err := cl.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	o, err := res.snapshot()
	if err != nil || !o.ok {
		t.Fatalf("produce into %s: %v", id, err)
	}
	return committable{TxnID: id, ProducerID: o.pid, Epoch: o.epoch, First: o.first}
}

func txnClient(t *testing.T, brokers []string, id string, timeout time.Duration) *kgo.Client {
	t.Helper()
	cl, err := newClient(brokers, nil, kgo.TransactionalID(id), kgo.TransactionTimeout(timeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func committedRecords(t *testing.T, brokers []string) int {
	t.Helper()
	n := 0
	err := ReadTopic(context.Background(), brokers, "t", true, func(Message[[]byte, []byte]) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitNotOngoing waits until the broker no longer reports id's transaction
// as ongoing (it expired), asking it every few milliseconds.
func waitNotOngoing(t *testing.T, cl *kgo.Client, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{id}
		resp, err := req.RequestWith(context.Background(), cl)
		if err == nil && len(resp.TransactionStates) == 1 && resp.TransactionStates[0].State != "Ongoing" {
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the broker: it has no push signal
	}
	t.Fatalf("transaction %s did not expire", id)
}

// TestCommitRaw pins down how a raw EndTxn(commit) by producer id and epoch
// behaves, with KIP-890 epoch bumps (the newest protocol) and without them
// (Kafka 3.9): what recovery may and may not rely on.
func TestCommitRaw(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		t.Run("kafka="+version, func(t *testing.T) {
			brokers := startBroker(t, version)
			adm := adminClient(t, brokers)
			ctx := context.Background()
			const timeout = 10 * time.Second

			// A prepared transaction commits; committing it again (a
			// restart after the commit) is success and adds nothing.
			c1 := openTxn(t, txnClient(t, brokers, "a", time.Minute), "a", 10)
			if committedRecords(t, brokers) != 0 {
				t.Fatal("open transaction visible to read_committed")
			}
			for i := 0; i < 2; i++ {
				if err := commitRaw(ctx, adm, c1, timeout); err != nil {
					t.Fatalf("commit %d of %s: %v", i+1, c1, err)
				}
			}
			if n := committedRecords(t, brokers); n != 10 {
				t.Fatalf("%d committed records, want 10", n)
			}

			// Committed by its own client (KIP-890: epoch bumped), then
			// recovered from the committable: success.
			clB := txnClient(t, brokers, "b", time.Minute)
			c2 := openTxn(t, clB, "b", 5)
			if err := clB.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			if err := commitRaw(ctx, adm, c2, timeout); err != nil {
				t.Fatalf("recommit of %s: %v", c2, err)
			}

			// Expired by the broker before its commit: lost, loudly.
			c3 := openTxn(t, txnClient(t, brokers, "c", 300*time.Millisecond), "c", 5)
			waitNotOngoing(t, adm, "c")
			if err := commitRaw(ctx, adm, c3, timeout); !errors.Is(err, errTxnLost) {
				t.Fatalf("commit of an expired transaction: %v, want errTxnLost", err)
			}

			// Fenced by another producer of the id: lost, loudly.
			c4 := openTxn(t, txnClient(t, brokers, "d", time.Minute), "d", 5)
			if err := abortRaw(ctx, adm, "d", time.Minute, timeout); err != nil {
				t.Fatal(err)
			}
			if err := commitRaw(ctx, adm, c4, timeout); !errors.Is(err, errTxnLost) {
				t.Fatalf("commit of a fenced transaction: %v, want errTxnLost", err)
			}
			if n := committedRecords(t, brokers); n != 15 {
				t.Fatalf("%d committed records, want 15", n)
			}

			// Why an id is not reused while a restore point may still name
			// its committed transaction: a new transaction on the id is
			// fenced by the stale commit under KIP-890, and before it (same
			// epoch) the stale commit commits the new transaction: phantom
			// output of a checkpoint that never completed.
			clE := txnClient(t, brokers, "e", time.Minute)
			c5 := openTxn(t, clE, "e", 5)
			if err := clE.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			openTxn(t, clE, "e", 7)
			err := commitRaw(ctx, adm, c5, timeout)
			n := committedRecords(t, brokers)
			switch version {
			case "":
				if !errors.Is(err, errTxnLost) || n != 20 {
					t.Fatalf("KIP-890: stale commit on a reused id: %v, %d records; want errTxnLost and 20", err, n)
				}
			default:
				if err != nil || n != 27 {
					t.Fatalf("pre-KIP-890: stale commit on a reused id: %v, %d records; want it to commit the new transaction (27)", err, n)
				}
			}
		})
	}
}

// TestSlotReuse drives the transactional writer through checkpoints and
// checks the pool: an id is reused only after a checkpoint that completed
// after its commit, and an exhausted pool is an error that says why.
func TestSlotReuse(t *testing.T) {
	brokers := startBroker(t, "")
	_, d := startTxnWriter(t, brokers, "reuse")
	defer d.w.Close()
	w, ctx := d.w, context.Background()
	write := func(wantSlot int) { t.Helper(); d.write(wantSlot, "x") }
	preCommit, complete := d.preCommit, d.complete
	write(0)
	c1 := preCommit(1)
	write(1)
	complete(c1) // slot 0 committed after snapshot 1: still named by checkpoint 1
	c2 := preCommit(2)
	write(2)
	complete(c2) // checkpoint 2 was taken after slot 0's commit: slot 0 is free
	c3 := preCommit(3)
	write(0)
	c4 := preCommit(4) // checkpoint 3 never completes (aborted)
	if err := w.Write(ctx, []string{"x"}); err == nil || !strings.Contains(err.Error(), "all 3 transactional ids are in use") {
		t.Fatalf("exhausted pool: %v", err)
	}
	complete(c3, c4)
	if n := committedRecords(t, brokers); n != 4 {
		t.Fatalf("%d committed records, want 4", n)
	}
}

type checkpointCommittable struct {
	id   uint64
	data []byte
}

func toCommittables(cs []checkpointCommittable) []checkpoint.Committable {
	out := make([]checkpoint.Committable, len(cs))
	for i, c := range cs {
		out[i] = checkpoint.Committable{CheckpointID: c.id, Data: c.data}
	}
	return out
}

// TestStaleCommittable restores an older savepoint after its transaction's
// id was reused and a newer transaction was left open on it (prepared for a
// checkpoint that never completed, then the job died). Before KIP-890 the
// newer transaction has the same producer id and epoch as the restored one,
// so a raw EndTxn would commit it: phantom output that the replay then
// writes again. With KIP-890 the restored epoch is behind and the
// coordinator answers "fenced", which it also answers for a transaction it
// aborted: the log of the first record settles it. Recovery must commit
// only the restored transaction, which was committed already, and abort
// the newer one.
func TestStaleCommittable(t *testing.T) {
	for _, tc := range []struct {
		name, version string
		v1            bool // restore the committable as version 1, without its first record
	}{
		{"kip890", "", false},
		{"pre-kip890", "3.9", false},
		{"pre-kip890/version-1-committable", "3.9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, brokers, c1, old := staleSetup(t, tc.version)
			ctx := context.Background()

			// Restore savepoint 1.
			restored := c1
			if tc.v1 {
				old.First = recordPos{}
				restored.data = old.encode()
			}
			w2, err := makeTxnWriter(cfg, "job", "out", 0, 1)
			if err != nil {
				t.Fatal(err)
			}
			defer w2.Close()
			err = w2.Recover(ctx, toCommittables([]checkpointCommittable{restored}))
			got := committedValues(t, brokers)
			switch {
			case tc.v1:
				// Documents why version 2 exists: without the first
				// record the newer transaction is committed.
				if err != nil || !slices.Equal(got, []string{"a1", "a2", "a3", "b1", "d1", "d2"}) {
					t.Fatalf("version 1 committable: %v, committed %v; want the old behaviour (phantom d1, d2)", err, got)
				}
			default:
				if err != nil {
					t.Fatalf("recover savepoint 1: %v", err)
				}
				if !slices.Equal(got, []string{"a1", "a2", "a3", "b1"}) {
					t.Fatalf("committed %v after restoring savepoint 1, want a1..a3 b1 (d1, d2 are a later transaction's, c1 was never completed)", got)
				}
				if n := openTxnCount(t, brokers, "stale-"); n != 0 {
					t.Fatalf("%d transactions left open after recovery", n)
				}
			}
		})
	}
}

// staleSetup runs TestStaleCommittable up to the restore.
func staleSetup(t *testing.T, version string) (*SinkConfig[string], []string, checkpointCommittable, committable) {
	t.Helper()
	brokers := startBroker(t, version)
	cfg, d := startTxnWriter(t, brokers, "stale")
	w := d.w
	// Without KIP-890 the sink now starts every transaction of an id with
	// a new producer (settle); before, it kept one client and one epoch
	// per id, and the savepoints it wrote may still be restored.
	w.kip890 = true
	write, preCommit, complete := d.write, d.preCommit, d.complete
	write(0, "a1", "a2", "a3")
	c1 := preCommit(1) // savepoint 1 names slot 0's transaction
	write(1, "b1")
	complete(c1)
	c2 := preCommit(2)
	write(2, "c1")
	complete(c2) // slot 0 is free again
	preCommit(3) // checkpoint 3 never completes
	write(0, "d1", "d2")
	c4 := preCommit(4) // nor does 4: the job dies with both prepared
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	old, _ := decodeCommittable(c1.data)
	newer, _ := decodeCommittable(c4.data)
	sameEpoch := old.ProducerID == newer.ProducerID && old.Epoch == newer.Epoch
	if sameEpoch != (version != "") {
		t.Fatalf("restored %s, newer %s: same producer id and epoch %v, want %v with kafka=%q",
			old, newer, sameEpoch, version != "", version)
	}
	// Until the sink committed with its own EndTxn, franz-go lost one of
	// these commits a few times in a thousand runs under load (see Commit).
	if got := committedValues(t, brokers); !slices.Equal(got, []string{"a1", "a2", "a3", "b1"}) {
		t.Fatalf("before the restore: %v committed, want a1..a3 b1", got)
	}
	return cfg, brokers, c1, old
}

// startTxnWriter makes and recovers the exactly-once writer of subtask 0 of
// 1, a pool of 3 transactional ids under prefix, writing to topic t. The
// caller closes d.w.
func startTxnWriter(t *testing.T, brokers []string, prefix string) (*SinkConfig[string], txnDriver) {
	t.Helper()
	cfg := &SinkConfig[string]{Brokers: brokers, Topic: "t", Value: String{}, Guarantee: ExactlyOnce,
		TransactionalIDPrefix: prefix, TransactionTimeout: time.Minute, CommitTimeout: 10 * time.Second, PoolSize: 3}
	w, err := makeTxnWriter(cfg, "job", "out", 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Recover(context.Background(), nil); err != nil {
		w.Close()
		t.Fatal(err)
	}
	return cfg, txnDriver{t: t, w: w}
}

// txnDriver drives a transactional writer through checkpoints, failing the
// test on any error.
type txnDriver struct {
	t *testing.T
	w *txnWriter[string]
}

// write writes vs and checks the transaction went to slot.
func (d txnDriver) write(slot int, vs ...string) {
	d.t.Helper()
	if err := d.w.Write(context.Background(), vs); err != nil {
		d.t.Fatal(err)
	}
	if d.w.cur.index != slot {
		d.t.Fatalf("writing into slot %d, want %d", d.w.cur.index, slot)
	}
}

func (d txnDriver) preCommit(id uint64) checkpointCommittable {
	d.t.Helper()
	data, err := d.w.PreCommit(context.Background(), id)
	if err != nil || data == nil {
		d.t.Fatalf("pre-commit %d: %v", id, err)
	}
	return checkpointCommittable{id: id, data: data}
}

// complete commits cs and completes the last of their checkpoints.
func (d txnDriver) complete(cs ...checkpointCommittable) {
	d.t.Helper()
	if err := d.w.Commit(context.Background(), toCommittables(cs)); err != nil {
		d.t.Fatal(err)
	}
	if err := d.w.CheckpointComplete(cs[len(cs)-1].id); err != nil {
		d.t.Fatal(err)
	}
}

func committedValues(t *testing.T, brokers []string) []string {
	t.Helper()
	var out []string
	err := ReadTopic(context.Background(), brokers, "t", true, func(m Message[[]byte, []byte]) error {
		out = append(out, string(m.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func openTxnCount(t *testing.T, brokers []string, prefix string) int {
	t.Helper()
	ids, err := openTxns(context.Background(), adminClient(t, brokers), prefix, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return len(ids)
}

// TestCommitCheckedAcrossBrokerRestart commits a prepared transaction after
// the development broker restarted from its data directory: the leader
// still reports the transaction's start offset, so the check recognises it
// as the open one (kfake moves a transaction's start time forward by the
// outage, which is why the check does not compare start times).
func TestCommitCheckedAcrossBrokerRestart(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		t.Run("kafka="+version, func(t *testing.T) {
			dir := t.TempDir()
			cfg := devbroker.Config{DataDir: dir, KafkaVersion: version, Topics: map[string]int32{"t": 2}}
			b, err := devbroker.Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cl, err := newClient(b.Addrs(), nil, kgo.TransactionalID("r"), kgo.TransactionTimeout(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			c := openTxn(t, cl, "r", 10)
			cl.Close()
			b.Close()
			time.Sleep(50 * time.Millisecond) // an outage kfake shifts start times by
			b, err = devbroker.Start(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			brokers := b.Addrs()
			done, err := commitChecked(context.Background(), adminClient(t, brokers), c, 10*time.Second)
			if err != nil || done {
				t.Fatalf("commit %s after a broker restart: already committed %v, %v; want it committed now", c, done, err)
			}
			if n := committedRecords(t, brokers); n != 10 {
				t.Fatalf("%d committed records, want 10", n)
			}
		})
	}
}

// TestFencedAbortedStaysLost: a transaction that a new producer of its id
// fenced and aborted cannot be committed, and the log check of commitChecked
// says so rather than taking "fenced" for "committed long ago" (as it may
// for a restored older savepoint, TestStaleCommittable).
func TestFencedAbortedStaysLost(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		t.Run("kafka="+version, func(t *testing.T) {
			brokers := startBroker(t, version)
			adm := adminClient(t, brokers)
			ctx := context.Background()
			cl := txnClient(t, brokers, "f", time.Minute)
			c := openTxn(t, cl, "f", 5)
			if err := abortRaw(ctx, adm, "f", time.Minute, 10*time.Second); err != nil {
				t.Fatal(err)
			}
			done, err := commitChecked(ctx, adm, c, 10*time.Second)
			if !errors.Is(err, errTxnLost) || done {
				t.Fatalf("commit of a fenced, aborted transaction: done %v, %v; want errTxnLost", done, err)
			}
			if out, err := outcomeInLog(ctx, adm, c, 10*time.Second); err != nil || out != outcomeAborted {
				t.Fatalf("log outcome %v, %v; want aborted", out, err)
			}
			if n := committedRecords(t, brokers); n != 0 {
				t.Fatalf("%d committed records, want 0", n)
			}
		})
	}
}

// TestCommitNotLeftToClient: the sink commits with its own EndTxn, so a
// client that aborts instead of committing (franz-go under load, see
// Commit) loses nothing, and the id's next transaction runs on a new
// client. The faulty client is simulated by an EndTransaction(TryAbort).
func TestCommitNotLeftToClient(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		for _, aborts := range []bool{false, true} {
			t.Run(fmt.Sprintf("kafka=%s/client-aborts=%v", version, aborts), func(t *testing.T) {
				brokers := startBroker(t, version)
				_, d := startTxnWriter(t, brokers, "own")
				defer d.w.Close()
				if aborts {
					d.w.endClient = func(ctx context.Context, cl *kgo.Client) error { return cl.EndTransaction(ctx, kgo.TryAbort) }
				}
				d.write(0, "x1", "x2")
				first := d.w.slots[0].cl
				d.complete(d.preCommit(1))
				if got := committedValues(t, brokers); !slices.Equal(got, []string{"x1", "x2"}) {
					t.Fatalf("%v committed, want x1 x2", got)
				}
				d.write(1, "y1")
				d.complete(d.preCommit(2))
				d.write(2, "z1") // warmed while slot 0 waited to be free
				d.complete(d.preCommit(3))
				d.write(0, "w1") // the id's next transaction
				d.complete(d.preCommit(4))
				// Without KIP-890 every commit replaces the client.
				if replaced, want := d.w.slots[0].cl != first, aborts || version != ""; replaced != want {
					t.Fatalf("client replaced: %v, want %v", replaced, want)
				}
				if got := committedValues(t, brokers); !slices.Equal(got, []string{"w1", "x1", "x2", "y1", "z1"}) {
					t.Fatalf("%v committed, want w1 x1 x2 y1 z1", got)
				}
				if n := openTxnCount(t, brokers, "own-"); n != 0 {
					t.Fatalf("%d transactions left open", n)
				}
			})
		}
	}
}

// TestCommitMatchesTransactionVersion: on a cluster that offers EndTxn v5
// but has not finalized transaction.version 2 (an upgraded cluster),
// franz-go ends transactions with v4, which leaves the epoch; the sink's
// own commit must too (a v5 commit bumps it).
func TestCommitMatchesTransactionVersion(t *testing.T) {
	brokers := startBroker(t, "")
	adm := adminClient(t, brokers)
	req := kmsg.NewPtrUpdateFeaturesRequest()
	u := kmsg.NewUpdateFeaturesRequestFeatureUpdate()
	u.Feature, u.MaxVersionLevel, u.UpgradeType = "transaction.version", 1, 2 // safe downgrade
	req.FeatureUpdates = append(req.FeatureUpdates, u)
	resp, err := req.RequestWith(context.Background(), adm)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err != nil {
		t.Fatalf("set transaction.version 1: %v", err)
	}
	_, d := startTxnWriter(t, brokers, "tv1")
	defer d.w.Close()
	if d.w.kip890 {
		t.Fatal("the writer takes the cluster for a KIP-890 one")
	}
	d.write(0, "x1")
	cc := d.preCommit(1)
	d.complete(cc)
	c, _ := decodeCommittable(cc.data)
	dreq := kmsg.NewPtrDescribeTransactionsRequest()
	dreq.TransactionalIDs = []string{c.TxnID}
	dresp, err := dreq.RequestWith(context.Background(), adm)
	if err != nil || len(dresp.TransactionStates) != 1 {
		t.Fatalf("describe %s: %v", c.TxnID, err)
	}
	if st := dresp.TransactionStates[0]; st.ProducerEpoch != c.Epoch || st.State == "Ongoing" {
		t.Fatalf("after the commit of %s: %s at epoch %d, want ended at epoch %d (EndTxn v4)", c, st.State, st.ProducerEpoch, c.Epoch)
	}
	if got := committedValues(t, brokers); !slices.Equal(got, []string{"x1"}) {
		t.Fatalf("%v committed, want x1", got)
	}
}

// TestNextProducerWarmed: while a transaction is open, the id the next one
// will use has its producer initialized already (the broker knows it, in
// state Empty, before any record is written to it), on both kinds of
// broker: the record path does not wait for InitProducerID on the barrier.
func TestNextProducerWarmed(t *testing.T) {
	for _, version := range []string{"", "3.9"} {
		t.Run("kafka="+version, func(t *testing.T) {
			brokers := startBroker(t, version)
			_, d := startTxnWriter(t, brokers, "warm")
			defer d.w.Close()
			adm := adminClient(t, brokers)
			for round, slot := range []int{0, 1, 2} {
				d.write(slot, fmt.Sprint("r", round))
				n := d.w.next
				if n == nil || n.s.state != slotWarming || n.s.index == slot {
					t.Fatalf("round %d: no other slot warming while slot %d is open", round, slot)
				}
				err := <-n.done
				n.done <- err // leave it for open
				if err != nil {
					t.Fatalf("warm up %s: %v", n.s.id, err)
				}
				req := kmsg.NewPtrDescribeTransactionsRequest()
				req.TransactionalIDs = []string{n.s.id}
				resp, err := req.RequestWith(context.Background(), adm)
				if err != nil || len(resp.TransactionStates) != 1 || resp.TransactionStates[0].ErrorCode != 0 || resp.TransactionStates[0].State != "Empty" {
					t.Fatalf("round %d: the broker does not know the warmed id %s as an idle producer: %+v, %v", round, n.s.id, resp, err)
				}
				d.complete(d.preCommit(uint64(round + 1)))
			}
			if got := committedValues(t, brokers); !slices.Equal(got, []string{"r0", "r1", "r2"}) {
				t.Fatalf("%v committed, want r0 r1 r2", got)
			}
		})
	}
}
