package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// Recover learns the cluster's transaction version (txnversion.go), commits
// the restored committables (old subtask j's go to subtask j mod
// parallelism) and then aborts every open transaction of this sink that
// this subtask owns, whatever parallelism left it.
func (w *txnWriter[T]) Recover(ctx context.Context, cs []checkpoint.Committable) error {
	adm, kip890, err := commitClient(ctx, w.adm, w.cfg.Brokers, w.cfg.ClientOptions, w.cfg.CommitTimeout)
	if err != nil {
		return fmt.Errorf("kafka sink %q: %w", w.name, err)
	}
	if adm != w.adm {
		w.adm.Close()
	}
	w.adm, w.kip890 = adm, kip890
	for _, cm := range cs {
		c, err := decodeCommittable(cm.Data)
		if err != nil {
			return engine.Permanent(fmt.Errorf("checkpoint %d: %w", cm.CheckpointID, err))
		}
		if err := w.commitRecovered(ctx, cm.CheckpointID, c); err != nil {
			return err
		}
		// The restored checkpoint names this id's old transaction until
		// a checkpoint of this attempt completes: keep the id unused.
		if j, k, ok := w.ids.parse(c.TxnID); ok && j == w.subtask && k < len(w.slots) {
			w.slots[k].state, w.slots[k].freeAfter = slotCommitted, 0
		}
	}
	open, err := openTxns(ctx, w.adm, w.ids.stem, w.cfg.CommitTimeout)
	if err != nil {
		return fmt.Errorf("find transactions left open by earlier attempts: %w", err)
	}
	aborted := 0
	for _, id := range open {
		j, _, ok := w.ids.parse(id)
		if !ok || owner(j, w.parallelism) != w.subtask {
			continue
		}
		if err := abortRaw(ctx, w.adm, id, w.cfg.TransactionTimeout, w.cfg.CommitTimeout); err != nil {
			return fmt.Errorf("abort transaction left open by an earlier attempt: %w", explain(err))
		}
		aborted++
	}
	if c := w.cfg.Counters; c != nil {
		c.Recovered.Add(int64(len(cs)))
		c.Aborted.Add(int64(aborted))
	}
	if len(cs) > 0 || aborted > 0 {
		w.log.Info("kafka sink recovered", "committed", len(cs), "aborted", aborted)
	}
	return nil
}

// commitRecovered commits a transaction prepared by another process or
// attempt, after making sure that the transaction open on its id is this
// one (commitChecked). A lost transaction stops the job: restarting cannot
// bring its output back, and going on would silently skip it.
func (w *txnWriter[T]) commitRecovered(ctx context.Context, ckpt uint64, c committable) error {
	done, err := commitChecked(ctx, w.adm, c, w.cfg.CommitTimeout)
	switch {
	case err == nil:
		if done {
			w.log.Info("restored transaction was committed before (a later transaction ran on its id)",
				"checkpoint", ckpt, "transaction", c.String())
		}
		return nil
	case errors.Is(err, errTxnLost):
		return engine.Permanent(fmt.Errorf("checkpoint %d is complete but its Kafka output cannot be committed, so exactly-once delivery is broken: %w", ckpt, err))
	}
	return fmt.Errorf("checkpoint %d: %w", ckpt, explain(err))
}
