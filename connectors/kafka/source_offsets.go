package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Timestamps that ask ListOffsets for the earliest or the latest offset.
const (
	listEarliest = -2
	listLatest   = -1
)

// listOffsets asks the partition leaders for an offset of every partition:
// at ts (a Unix millisecond timestamp, or listEarliest / listLatest). With
// readCommitted, the latest offset is the last stable offset. A partition
// without a record at or after ts gets -1.
func listOffsets(ctx context.Context, cl *kgo.Client, parts []tp, ts int64, readCommitted bool) (map[tp]int64, error) {
	out := make(map[tp]int64, len(parts))
	if len(parts) == 0 {
		return out, nil
	}
	err := retry(ctx, 30*time.Second, "list offsets", func(ctx context.Context) error {
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		if readCommitted {
			req.IsolationLevel = 1
		}
		byTopic := map[string]int{}
		for _, p := range parts {
			i, ok := byTopic[p.topic]
			if !ok {
				i = len(req.Topics)
				byTopic[p.topic] = i
				rt := kmsg.NewListOffsetsRequestTopic()
				rt.Topic = p.topic
				req.Topics = append(req.Topics, rt)
			}
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Partition = p.partition
			rp.CurrentLeaderEpoch = -1
			rp.Timestamp = ts
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("list offsets of %s/%d: %w", t.Topic, p.Partition, err)
				}
				out[tp{topic: t.Topic, partition: p.Partition}] = p.Offset
			}
		}
		for _, p := range parts {
			if _, ok := out[p]; !ok {
				return fmt.Errorf("list offsets: no answer for %s", p)
			}
		}
		return nil
	})
	return out, err
}

// committedOffsets returns the group's committed offsets (-1 where none).
func committedOffsets(ctx context.Context, cl *kgo.Client, group string, parts []tp) (map[tp]int64, error) {
	out := make(map[tp]int64, len(parts))
	if len(parts) == 0 {
		return out, nil
	}
	err := retry(ctx, 30*time.Second, "fetch committed offsets of group "+group, func(ctx context.Context) error {
		req := kmsg.NewPtrOffsetFetchRequest()
		req.Group = group
		byTopic := map[string]int{}
		for _, p := range parts {
			i, ok := byTopic[p.topic]
			if !ok {
				i = len(req.Topics)
				byTopic[p.topic] = i
				rt := kmsg.NewOffsetFetchRequestTopic()
				rt.Topic = p.topic
				req.Topics = append(req.Topics, rt)
			}
			req.Topics[i].Partitions = append(req.Topics[i].Partitions, p.partition)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
			return err
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					return fmt.Errorf("committed offset of %s/%d: %w", t.Topic, p.Partition, err)
				}
				out[tp{topic: t.Topic, partition: p.Partition}] = p.Offset
			}
		}
		return nil
	})
	return out, err
}

// commitGroupOffsets writes offsets to group as an admin commit (generation
// -1, no member): the source never joins the group. Topics are named by name
// and id, as the request version the broker speaks needs.
func commitGroupOffsets(ctx context.Context, cl *kgo.Client, group string, offsets map[tp]int64, ids map[string][16]byte) error {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group = group
	req.Generation = -1
	byTopic := map[string]int{}
	for p, off := range offsets {
		i, ok := byTopic[p.topic]
		if !ok {
			i = len(req.Topics)
			byTopic[p.topic] = i
			rt := kmsg.NewOffsetCommitRequestTopic()
			rt.Topic, rt.TopicID = p.topic, ids[p.topic]
			req.Topics = append(req.Topics, rt)
		}
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = p.partition
		rp.Offset = off
		rp.LeaderEpoch = -1
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				return fmt.Errorf("commit offsets of topic %q (id %x) partition %d to group %s: %w", t.Topic, t.TopicID, p.Partition, group, err)
			}
		}
	}
	return nil
}

// resolveStart turns the configured start into concrete next offsets (or
// offsetEarliest) for parts.
func resolveStart(ctx context.Context, cl *kgo.Client, s StartOffset, group string, parts []tp, readCommitted bool) (map[tp]int64, error) {
	out := make(map[tp]int64, len(parts))
	kind := s.kind
	rest := parts
	if kind == startCommitted {
		committed, err := committedOffsets(ctx, cl, group, parts)
		if err != nil {
			return nil, err
		}
		rest = nil
		for _, p := range parts {
			if off := committed[p]; off >= 0 {
				out[p] = off
			} else {
				rest = append(rest, p)
			}
		}
		kind = s.fallback
	}
	switch kind {
	case startEarliest:
		for _, p := range rest {
			out[p] = offsetEarliest
		}
	case startLatest, startTime:
		ts := int64(listLatest)
		if kind == startTime {
			ts = s.at.UnixMilli()
		}
		offs, err := listOffsets(ctx, cl, rest, ts, readCommitted)
		if err != nil {
			return nil, err
		}
		var none []tp
		for _, p := range rest {
			if off := offs[p]; off >= 0 {
				out[p] = off
			} else {
				none = append(none, p) // no record at or after the time: start at the end
			}
		}
		ends, err := listOffsets(ctx, cl, none, listLatest, readCommitted)
		if err != nil {
			return nil, err
		}
		for _, p := range none {
			out[p] = ends[p]
		}
	}
	return out, nil
}
