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

// Small administration helpers for examples, tests and tools, so that they
// need no Kafka client of their own.

// ErrTopicExists is returned by CreateTopic for a topic that exists.
var ErrTopicExists = errors.New("topic already exists")

// CreateTopic creates topic with the given number of partitions and the
// broker's default replication factor.
func CreateTopic(ctx context.Context, brokers []string, topic string, partitions int32, opts ...kgo.Opt) error {
	cl, err := newClient(brokers, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	return retry(ctx, 30*time.Second, "create topic "+topic, func(ctx context.Context) error {
		req := kmsg.NewPtrCreateTopicsRequest()
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic = topic
		rt.NumPartitions = partitions
		rt.ReplicationFactor = -1
		req.Topics = append(req.Topics, rt)
		req.TimeoutMillis = 30000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			err := kerr.ErrorForCode(t.ErrorCode)
			if errors.Is(err, kerr.TopicAlreadyExists) {
				return fmt.Errorf("create topic %s: %w", topic, ErrTopicExists)
			}
			if err != nil {
				return fmt.Errorf("create topic %s: %w", topic, err)
			}
		}
		return nil
	})
}

// DeleteTopic deletes topic; a topic that does not exist is not an error.
func DeleteTopic(ctx context.Context, brokers []string, topic string, opts ...kgo.Opt) error {
	cl, err := newClient(brokers, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	return retry(ctx, 30*time.Second, "delete topic "+topic, func(ctx context.Context) error {
		req := kmsg.NewPtrDeleteTopicsRequest()
		rt := kmsg.NewDeleteTopicsRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, rt)
		req.TopicNames = []string{topic}
		req.TimeoutMillis = 30000
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			if err := kerr.ErrorForCode(t.ErrorCode); err != nil && !errors.Is(err, kerr.UnknownTopicOrPartition) {
				return fmt.Errorf("delete topic %s: %w", topic, err)
			}
		}
		return nil
	})
}

// PartitionOffsets describes the log of one partition.
type PartitionOffsets struct {
	Partition int32
	// Start is the first offset the broker still has.
	Start int64
	// LastStable is the first offset of a transaction still open (the end
	// for read_committed consumers); equal to HighWatermark when none is.
	LastStable int64
	// HighWatermark is the offset the next record will get.
	HighWatermark int64
}

// TopicOffsets returns the offsets of every partition of topic.
func TopicOffsets(ctx context.Context, brokers []string, topic string, opts ...kgo.Opt) ([]PartitionOffsets, error) {
	cl, err := newClient(brokers, opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return topicOffsets(ctx, cl, topic)
}

func topicOffsets(ctx context.Context, cl *kgo.Client, topic string) ([]PartitionOffsets, error) {
	counts, err := partitionCounts(ctx, cl, []string{topic}, true)
	if err != nil {
		return nil, err
	}
	parts := ownedPartitions([]string{topic}, counts, 0, 1)
	start, err := listOffsets(ctx, cl, parts, listEarliest, false)
	if err != nil {
		return nil, err
	}
	stable, err := listOffsets(ctx, cl, parts, listLatest, true)
	if err != nil {
		return nil, err
	}
	high, err := listOffsets(ctx, cl, parts, listLatest, false)
	if err != nil {
		return nil, err
	}
	out := make([]PartitionOffsets, len(parts))
	for i, p := range parts {
		out[i] = PartitionOffsets{Partition: p.partition, Start: start[p], LastStable: stable[p], HighWatermark: high[p]}
	}
	return out, nil
}

// ReadTopic calls fn, in offset order per partition, for every record of
// topic up to its end when ReadTopic starts: with readCommitted, the records
// of committed transactions below the last stable offset (what a
// read_committed consumer sees); otherwise every record.
func ReadTopic(ctx context.Context, brokers []string, topic string, readCommitted bool, fn func(Message[[]byte, []byte]) error, opts ...kgo.Opt) error {
	meta, err := newClient(brokers, opts)
	if err != nil {
		return err
	}
	offs, err := topicOffsets(ctx, meta, topic)
	meta.Close()
	if err != nil {
		return err
	}
	start := map[int32]kgo.Offset{}
	end := map[int32]int64{}
	for _, o := range offs {
		e := o.HighWatermark
		if readCommitted {
			e = o.LastStable
		}
		if e > o.Start {
			start[o.Partition] = kgo.NewOffset().At(o.Start)
			end[o.Partition] = e
		}
	}
	if len(start) == 0 {
		return nil
	}
	copts := []kgo.Opt{kgo.KeepControlRecords(), kgo.ConsumeResetOffset(kgo.NoResetOffset()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})}
	if readCommitted {
		copts = append(copts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	cl, err := newClient(brokers, opts, copts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(end) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read topic %s: %d partitions unfinished: %w", topic, len(end), err)
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", t, p, err) })
		if ferr != nil {
			return ferr
		}
		for it := fetches.RecordIter(); !it.Done(); {
			rec := it.Next()
			e, ok := end[rec.Partition]
			if !ok || rec.Offset >= e {
				continue
			}
			if rec.Offset == e-1 {
				delete(end, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				continue
			}
			m := Message[[]byte, []byte]{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
				Timestamp: rec.Timestamp, Key: rec.Key, Value: rec.Value}
			for _, h := range rec.Headers {
				m.Headers = append(m.Headers, Header{Key: h.Key, Value: h.Value})
			}
			if err := fn(m); err != nil {
				return err
			}
		}
	}
	return nil
}
