package kafka

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// assignedTo returns the subtask of p that reads a partition. Partitions of
// a topic go round-robin from a start that depends on the topic, so several
// small topics do not all land on subtask 0. It only depends on its
// arguments: every subtask computes the same assignment alone.
func assignedTo(topic string, partition int32, p int) int {
	h := fnv.New32a()
	h.Write([]byte(topic))
	start := int(h.Sum32() % uint32(p))
	return (start + int(partition)) % p
}

// partitionCounts returns the number of partitions of each topic. With
// strict, a topic that does not exist is an error; otherwise it is left out
// (discovery retries later).
func partitionCounts(ctx context.Context, cl *kgo.Client, topics []string, strict bool) (map[string]int32, error) {
	counts, _, err := topicMetadata(ctx, cl, topics, strict)
	return counts, err
}

// topicMetadata returns the partition count and the id of each topic.
func topicMetadata(ctx context.Context, cl *kgo.Client, topics []string, strict bool) (map[string]int32, map[string][16]byte, error) {
	counts := map[string]int32{}
	ids := map[string][16]byte{}
	err := retry(ctx, 30*time.Second, "read topic metadata", func(ctx context.Context) error {
		req := kmsg.NewPtrMetadataRequest()
		for _, t := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(t)
			req.Topics = append(req.Topics, rt)
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			return err
		}
		var missing []string
		for _, t := range resp.Topics {
			name := ""
			if t.Topic != nil {
				name = *t.Topic
			}
			err := kerr.ErrorForCode(t.ErrorCode)
			switch {
			case errors.Is(err, kerr.UnknownTopicOrPartition):
				missing = append(missing, name)
				continue
			case err != nil:
				return fmt.Errorf("topic %s: %w", name, err)
			}
			counts[name] = int32(len(t.Partitions))
			ids[name] = t.TopicID
		}
		if strict && len(missing) > 0 {
			slices.Sort(missing)
			return fmt.Errorf("topics %s do not exist: %w", strings.Join(missing, ", "), kerr.UnknownTopicOrPartition)
		}
		return nil
	})
	return counts, ids, err
}

// ownedPartitions lists the partitions of counts that subtask i of p reads,
// in a fixed order.
func ownedPartitions(topics []string, counts map[string]int32, i, p int) []tp {
	var out []tp
	for _, t := range topics {
		for part := int32(0); part < counts[t]; part++ {
			if assignedTo(t, part, p) == i {
				out = append(out, tp{topic: t, partition: part})
			}
		}
	}
	return out
}

// discover looks for partitions added to the topics and hands the ones this
// subtask owns to ReadBatch. It runs on its own goroutine until ctx ends.
func (r *reader[K, V]) discover(ctx context.Context, known []tp, interval time.Duration) {
	defer r.wg.Done()
	seen := map[tp]bool{}
	for _, p := range known {
		seen[p] = true
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		counts, err := partitionCounts(ctx, r.cl, r.cfg.Topics, false)
		if err != nil {
			r.log.Debug("partition discovery failed; retrying at the next interval", "err", err)
			continue
		}
		var found []tp
		for _, p := range ownedPartitions(r.cfg.Topics, counts, r.subtask, r.parallelism) {
			if !seen[p] {
				found = append(found, p)
			}
		}
		if len(found) == 0 {
			continue
		}
		select {
		case r.discovered <- found:
			for _, p := range found {
				seen[p] = true
			}
		case <-ctx.Done():
			return
		}
	}
}
