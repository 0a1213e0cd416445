package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Committing a restored committable safely.
//
// A raw EndTxn names the transactional id, producer id and epoch, not the
// transaction: it ends whatever transaction is open on the id at that
// epoch. With KIP-890 (Kafka 4.0 transactions, EndTxn v5) every commit or
// abort bumps the epoch, so a later transaction never shares it. Before
// KIP-890 one client keeps its epoch across all its transactions, and
// after the id was reused a stale committable (of a savepoint older than
// the id's reuse, restored explicitly) would commit the newer transaction
// open on it: output of a checkpoint the restored job never reached
// (phantom), which the replay then writes again (duplicates).
//
// So before the EndTxn we make sure the transaction open on the id is the
// committable's. The committable names its first record (committable.First),
// and the partition leader reports, per producer id, the first offset of
// its open transaction on that partition (DescribeProducers,
// CurrentTxnStartOffset). Offsets are never reused, and the report survives
// leader changes and broker restarts (it is rebuilt from the log):
//
//   - The producer's open transaction starts at our record: it is ours and
//     still open. The transaction coordinator cannot have begun another on
//     the id, because it completes a transaction only once every partition
//     has its marker. EndTxn(commit) is safe.
//   - Otherwise our record's partition has its marker: the coordinator has
//     ended our transaction (committed, or aborted by timeout or fencing).
//     If a transaction is open on the id at our producer id and epoch
//     (DescribeTransactions), it is a later one, and ours was ended by an
//     EndTxn at the same epoch. The sink never sends EndTxn(abort) for a
//     prepared transaction, and the broker's aborts (transaction timeout,
//     InitProducerID) bump the epoch, so ours was committed: success,
//     without touching the later one (Recover aborts it afterwards).
//   - Otherwise nothing is open at our producer id and epoch, and EndTxn
//     cannot end anything but ours: it answers from the coordinator's
//     memory as before (success for a commit already done). When that
//     memory is gone (fenced: a later epoch; or an expired id), the log of
//     our first record's partition says whether it was committed
//     (txnlog.go): an older savepoint restored after its id was reused
//     under KIP-890 is success, a transaction the broker aborted is
//     errTxnLost.
//
// Why not the transaction's start time from DescribeTransactions: it costs
// a request in every PreCommit, has millisecond resolution, and kfake (the
// development broker) moves it forward by the outage when it restarts with
// a data directory, which would make an open transaction look like another
// one: a silent loss. Why not re-initialise the producer at every reuse of
// an id so that the epoch moves on: it costs a client and an InitProducerID
// per checkpoint, cannot protect committables written before, and turns
// every stale commit into "fenced", which cannot be told apart from a
// transaction the broker aborted.
//
// Committables of version 1 (no first record) are committed with the raw
// EndTxn as before: still safe for restores from the latest checkpoint (an
// id is reused only after a checkpoint taken after its commit completed),
// and exposed to the phantom commit above for older savepoints restored on
// brokers without KIP-890.
func commitChecked(ctx context.Context, cl *kgo.Client, c committable, timeout time.Duration) (alreadyCommitted bool, err error) {
	if !c.First.known() {
		return false, commitRaw(ctx, cl, c, timeout)
	}
	open, err := openAt(ctx, cl, c, timeout)
	if err != nil {
		return false, err
	}
	if !open {
		later, err := laterTxnOpen(ctx, cl, c, timeout)
		if err != nil {
			return false, err
		}
		if later {
			return true, nil
		}
	}
	err = commitRaw(ctx, cl, c, timeout)
	if !errors.Is(err, errTxnLost) {
		return false, err
	}
	// The coordinator has no answer for it any more (see txnlog.go).
	out, lerr := outcomeInLog(ctx, cl, c, timeout)
	switch {
	case lerr != nil:
		return false, fmt.Errorf("%w (and its first record could not be read to settle it: %v)", err, lerr)
	case out == outcomeCommitted:
		return true, nil
	case out == outcomeUnknown:
		return false, fmt.Errorf("%w (its first record, %s/%d@%d, is no longer in the log to settle it)", err, c.First.Topic, c.First.Partition, c.First.Offset)
	}
	return false, err
}

// openAt reports whether c's producer has an open transaction that starts at
// c's first record, asking the leader of its partition.
func openAt(ctx context.Context, cl *kgo.Client, c committable, timeout time.Duration) (bool, error) {
	var open bool
	err := retry(ctx, timeout, "describe the producers of "+c.String(), func(ctx context.Context) error {
		open = false
		req := kmsg.NewPtrDescribeProducersRequest()
		rt := kmsg.NewDescribeProducersRequestTopic()
		rt.Topic, rt.Partitions = c.First.Topic, []int32{c.First.Partition}
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		found := false
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if t.Topic != c.First.Topic || p.Partition != c.First.Partition {
					continue
				}
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("partition %s/%d: %w", t.Topic, p.Partition, err)
				}
				found = true
				for _, ap := range p.ActiveProducers {
					if ap.ProducerID == c.ProducerID && ap.CurrentTxnStartOffset == c.First.Offset {
						open = true
					}
				}
			}
		}
		if !found {
			return fmt.Errorf("no answer for partition %s/%d", c.First.Topic, c.First.Partition)
		}
		return nil
	})
	return open, err
}

// laterTxnOpen reports whether a transaction is open on c's id at c's
// producer id and epoch; the caller knows c's own transaction has ended, so
// that one is a later transaction.
func laterTxnOpen(ctx context.Context, cl *kgo.Client, c committable, timeout time.Duration) (bool, error) {
	var later bool
	err := retry(ctx, timeout, "describe "+c.String(), func(ctx context.Context) error {
		later = false
		req := kmsg.NewPtrDescribeTransactionsRequest()
		req.TransactionalIDs = []string{c.TxnID}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, s := range resp.TransactionStates {
			if s.TransactionalID != c.TxnID {
				continue
			}
			err := kerr.ErrorForCode(s.ErrorCode)
			switch {
			case errors.Is(err, kerr.TransactionalIDNotFound):
				return nil // forgotten: EndTxn says so
			case err != nil:
				return err
			}
			later = s.State == "Ongoing" && s.ProducerID == c.ProducerID && s.ProducerEpoch == c.Epoch
			return nil
		}
		return fmt.Errorf("no answer for transactional id %q", c.TxnID)
	})
	return later, err
}
