package kafka

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// errTxnLost marks a committable that can no longer be committed: the broker
// aborted it (transaction timeout), another producer fenced it, or it forgot
// the transactional id. Restarting cannot bring the output back.
var errTxnLost = errors.New("pre-committed transaction can no longer be committed")

// commitRaw commits a prepared transaction from any process with a raw
// EndTxn(commit) carrying the producer id and epoch of its last produce. It
// never sends InitProducerID, which would abort the transaction.
//
// A commit that already happened is success: under KIP-890 the broker then
// holds epoch+1 with the last transaction committed and answers a retry with
// the old epoch as success; before KIP-890 the epoch is unchanged and a
// commit of a completed commit is success too. Every other outcome that is
// not retriable means the output is lost.
func commitRaw(ctx context.Context, cl *kgo.Client, c committable, timeout time.Duration) error {
	return retry(ctx, timeout, "commit "+c.String(), func(ctx context.Context) error {
		req := kmsg.NewPtrEndTxnRequest()
		req.TransactionalID = c.TxnID
		req.ProducerID = c.ProducerID
		req.ProducerEpoch = c.Epoch
		req.Commit = true
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		err = kerr.ErrorForCode(resp.ErrorCode)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, kerr.InvalidTxnState):
			return fmt.Errorf("%w: %s was aborted by the broker (most likely its transaction timeout expired before it was committed): %v", errTxnLost, c, err)
		case errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
			return fmt.Errorf("%w: %s was fenced: the transactional id moved to a later epoch, because another producer initialized it (a second job with the same transactional id prefix?), or the broker aborted it, or (restoring a checkpoint older than the latest) a later transaction of this sink ran on it, in which case it was committed but the broker cannot tell: %v", errTxnLost, c, err)
		case errors.Is(err, kerr.InvalidProducerIDMapping), errors.Is(err, kerr.TransactionalIDNotFound):
			return fmt.Errorf("%w: the broker no longer knows %s (expired transactional id): %v", errTxnLost, c, err)
		}
		return err
	})
}

// abortRaw aborts whatever transaction is open on id by initializing a
// producer for it, which fences earlier producers and aborts their open
// transaction; the broker answers CONCURRENT_TRANSACTIONS until the abort
// is done, which retry waits out.
func abortRaw(ctx context.Context, cl *kgo.Client, id string, txnTimeout, timeout time.Duration) error {
	return retry(ctx, timeout, fmt.Sprintf("abort open transaction %q", id), func(ctx context.Context) error {
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID = &id
		req.TransactionTimeoutMillis = int32(txnTimeout / time.Millisecond)
		req.ProducerID, req.ProducerEpoch = -1, -1
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		return kerr.ErrorForCode(resp.ErrorCode)
	})
}

// openTxns lists the transactional ids of ongoing transactions whose id
// starts with stem, from every broker (a partial answer is an error: an
// unlisted transaction would hold back read_committed consumers).
func openTxns(ctx context.Context, cl *kgo.Client, stem string, timeout time.Duration) ([]string, error) {
	var ids []string
	err := retry(ctx, timeout, "list open transactions", func(ctx context.Context) error {
		ids = ids[:0]
		req := kmsg.NewPtrListTransactionsRequest()
		req.StateFilters = []string{"Ongoing"}
		pattern := "^" + regexp.QuoteMeta(stem)
		req.TransactionalIDPattern = &pattern // ignored by brokers before v2: we filter again below
		for _, shard := range cl.RequestSharded(ctx, req) {
			if shard.Err != nil {
				return fmt.Errorf("broker %d: %w", shard.Meta.NodeID, shard.Err)
			}
			resp := shard.Resp.(*kmsg.ListTransactionsResponse)
			if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
				return fmt.Errorf("broker %d: %w", shard.Meta.NodeID, err)
			}
			for _, s := range resp.TransactionStates {
				if len(s.TransactionalID) >= len(stem) && s.TransactionalID[:len(stem)] == stem {
					ids = append(ids, s.TransactionalID)
				}
			}
		}
		return nil
	})
	return ids, err
}
