package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/onceflow/onceflow/bench/internal/benchkit"
)

// pollEvery is how often the output's high watermarks and the group's
// committed offsets are read while the processor runs: a few requests a
// second cost next to nothing, unlike consuming the millions of outputs,
// whose CPU would be charged to goka in the same process. It bounds the
// error of the elapsed time.
const pollEvery = 50 * time.Millisecond

// sample is the output topic's size (the sum of its high watermarks: Sarama
// writes no transaction markers, so one offset is one output) at a time,
// with this process's CPU seconds then.
type sample struct {
	at      time.Time
	outputs int64
	cpu     float64
}

// offsetWatcher reads offsets with a franz-go client of its own.
type offsetWatcher struct{ cl *kgo.Client }

func newOffsetWatcher(brokers []string) (*offsetWatcher, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return nil, err
	}
	return &offsetWatcher{cl: cl}, nil
}

func (w *offsetWatcher) close() { w.cl.Close() }

// waitProcessed samples the output topic until the group has committed the
// end of every input partition, and returns the samples, the last taken
// after that commit. Goka commits an input's offset only once all its
// writes (table and output) are acknowledged, so by then the output is
// complete, whatever was reprocessed; its completion time is that of the
// first sample holding as many outputs as the last. (The commit follows
// the output by up to Sarama's auto-commit interval, 1 s: that delay is in
// the wait, not in the measurement.)
func (w *offsetWatcher) waitProcessed(ctx context.Context, group, in, out string, processorDone <-chan error) ([]sample, error) {
	end, err := w.highWatermarks(ctx, in)
	if err != nil {
		return nil, err
	}
	var samples []sample
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		committed, err := w.committed(ctx, group, in)
		if err != nil {
			return nil, err
		}
		outs, err := w.highWatermarks(ctx, out)
		if err != nil {
			return nil, err
		}
		samples = append(samples, sample{at: time.Now(), outputs: sum(outs), cpu: benchkit.CPUSeconds()})
		if reached(committed, end) {
			return samples, nil
		}
		select {
		case err := <-processorDone:
			return samples, fmt.Errorf("processor ended with %d outputs written: %v", sum(outs), err)
		case <-ctx.Done():
			return samples, ctx.Err()
		case <-t.C:
		}
	}
}

func reached(committed, end map[int32]int64) bool {
	for p, e := range end {
		if committed[p] < e {
			return false
		}
	}
	return true
}

func sum(offsets map[int32]int64) int64 {
	var n int64
	for _, o := range offsets {
		n += o
	}
	return n
}

// highWatermarks returns the high watermark of every partition of topic.
func (w *offsetWatcher) highWatermarks(ctx context.Context, topic string) (map[int32]int64, error) {
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, w.cl)
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	if len(mresp.Topics) != 1 {
		return nil, fmt.Errorf("metadata of %s: %d topics in the response", topic, len(mresp.Topics))
	}
	if err := kerr.ErrorForCode(mresp.Topics[0].ErrorCode); err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	req := kmsg.NewPtrListOffsetsRequest()
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	for _, p := range mresp.Topics[0].Partitions {
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = p.Partition
		rp.Timestamp = -1 // latest: the high watermark
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, w.cl)
	if err != nil {
		return nil, fmt.Errorf("offsets of %s: %w", topic, err)
	}
	out := map[int32]int64{}
	var errs []error
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				errs = append(errs, fmt.Errorf("offsets of %s/%d: %w", topic, p.Partition, err))
			}
			out[p.Partition] = p.Offset
		}
	}
	return out, errors.Join(errs...)
}

// committed returns group's committed offsets in topic (absent before its
// first commit). The request carries the group both ways (one group
// before OffsetFetch v8, a list from v8), whichever version is agreed.
func (w *offsetWatcher) committed(ctx context.Context, group, topic string) (map[int32]int64, error) {
	// No topics asks for all of the group's: a topic without its
	// partitions would return none.
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = group
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = group
	req.Groups = append(req.Groups, rg)
	resp, err := req.RequestWith(ctx, w.cl)
	if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	out := map[int32]int64{}
	// Before the group's first join the broker does not know it yet.
	notYet := func(err error) bool { return errors.Is(err, kerr.GroupIDNotFound) }
	add := func(code int16, t string, p int32, offset int64) error {
		if err := kerr.ErrorForCode(code); err != nil {
			return fmt.Errorf("committed offsets of %s in %s/%d: %w", group, t, p, err)
		}
		if t == topic {
			out[p] = offset
		}
		return nil
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); notYet(err) {
		return out, nil
	} else if err != nil {
		return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := add(p.ErrorCode, t.Topic, p.Partition, p.Offset); err != nil {
				return nil, err
			}
		}
	}
	for _, g := range resp.Groups {
		if err := kerr.ErrorForCode(g.ErrorCode); notYet(err) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("committed offsets of %s: %w", group, err)
		}
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				if err := add(p.ErrorCode, t.Topic, p.Partition, p.Offset); err != nil {
					return nil, err
				}
			}
		}
	}
	return out, nil
}
