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

// A coordinator that answers a restored commit with "fenced" no longer
// knows how the transaction ended: under KIP-890 every transaction of the
// id bumps the epoch, so an older savepoint's committable is fenced even
// when its transaction was committed long ago, and an abort by timeout or
// by a new producer is fenced the same way. The log of the first record's
// partition still knows: a read_committed fetch from that record lists the
// aborted transactions of the range it returns, by producer id and first
// offset. Ours is one of them, or its record is there and committed.

// errNotStable: a transaction open before the record holds the partition's
// last stable offset back; retry waits for it to end.
var errNotStable = errors.New("a transaction opened before the record is still open")

// txnOutcome is what the log says about a committable's transaction.
type txnOutcome int

const (
	outcomeUnknown   txnOutcome = iota // the record is gone (retention) or not ours
	outcomeCommitted                   // its first record is committed
	outcomeAborted                     // the partition lists it as aborted
)

// outcomeInLog reads c's first record with read_committed isolation from
// the partition leader. It waits (within timeout) while a transaction open
// before the record holds the last stable offset back.
func outcomeInLog(ctx context.Context, cl *kgo.Client, c committable, timeout time.Duration) (txnOutcome, error) {
	out := outcomeUnknown
	err := retry(ctx, timeout, "read the first record of "+c.String(), func(ctx context.Context) error {
		leader, topicID, err := partitionLeader(ctx, cl, c.First.Topic, c.First.Partition)
		if err != nil {
			return err
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 0, 0, 1<<20
		req.IsolationLevel = 1 // read_committed
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = c.First.Topic, topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = c.First.Partition, c.First.Offset, 1<<20
		rp.CurrentLeaderEpoch, rp.LogStartOffset = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl.Broker(int(leader)))
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if p.Partition != c.First.Partition {
					continue
				}
				err := kerr.ErrorForCode(p.ErrorCode)
				switch {
				case errors.Is(err, kerr.OffsetOutOfRange):
					return nil // deleted: unknown
				case err != nil:
					return fmt.Errorf("partition %s/%d: %w", c.First.Topic, c.First.Partition, err)
				case p.LastStableOffset <= c.First.Offset:
					return errNotStable
				}
				out = judge(c, p)
				return nil
			}
		}
		return fmt.Errorf("no answer for partition %s/%d", c.First.Topic, c.First.Partition)
	})
	return out, err
}

// judge reads a read_committed fetch from c's first record.
func judge(c committable, p kmsg.FetchResponseTopicPartition) txnOutcome {
	for _, a := range p.AbortedTransactions {
		if a.ProducerID == c.ProducerID && a.FirstOffset == c.First.Offset {
			return outcomeAborted
		}
	}
	// The returned data starts with the batch holding the record.
	for b := p.RecordBatches; len(b) > 0; {
		var batch kmsg.RecordBatch
		if err := batch.ReadFrom(b); err != nil {
			return outcomeUnknown
		}
		last := batch.FirstOffset + int64(batch.LastOffsetDelta)
		if batch.FirstOffset <= c.First.Offset && c.First.Offset <= last {
			if batch.ProducerID == c.ProducerID {
				return outcomeCommitted
			}
			return outcomeUnknown
		}
		n := 12 + int(batch.Length)
		if n > len(b) {
			break
		}
		b = b[n:]
	}
	return outcomeUnknown
}

// partitionLeader returns the leader of topic/partition and the topic's id
// (fetch requests from version 13 name topics by id).
func partitionLeader(ctx context.Context, cl *kgo.Client, topic string, partition int32) (int32, [16]byte, error) {
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return 0, [16]byte{}, err
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != topic {
			continue
		}
		if err := kerr.ErrorForCode(t.ErrorCode); err != nil {
			return 0, [16]byte{}, fmt.Errorf("topic %s: %w", topic, err)
		}
		for _, p := range t.Partitions {
			if p.Partition == partition {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return 0, [16]byte{}, fmt.Errorf("partition %s/%d: %w", topic, partition, err)
				}
				return p.Leader, t.TopicID, nil
			}
		}
	}
	return 0, [16]byte{}, fmt.Errorf("no metadata for partition %s/%d", topic, partition)
}
