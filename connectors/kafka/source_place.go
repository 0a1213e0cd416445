package kafka

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/onceflow/onceflow/checkpoint"
	"github.com/onceflow/onceflow/engine"
)

// place decides where each owned partition starts: its restored position;
// earliest if the checkpoint knows its topic but not the partition (it was
// created since); else the configured start. Bounded partitions also get
// their stop offset.
func (r *reader[K, V]) place(ctx context.Context, owned []tp, restored []checkpoint.SourcePosition) error {
	known := map[tp]position{}
	knownTopics := map[string]bool{}
	for _, sp := range restored {
		p, pos, err := decodePosition(sp)
		if err != nil {
			return engine.Permanent(err)
		}
		known[p], knownTopics[p.topic] = pos, true
	}
	var fresh []tp
	for _, p := range owned {
		st := &partState{tp: p, pos: position{next: offsetEarliest, stop: noStop}}
		if pos, ok := known[p]; ok {
			st.pos = pos
		} else if !knownTopics[p.topic] {
			fresh = append(fresh, p)
		}
		r.add(st)
	}
	starts, err := resolveStart(ctx, r.cl, r.cfg.StartOffset, r.cfg.Group, fresh, !r.cfg.ReadUncommitted)
	if err != nil {
		return fmt.Errorf("resolve start offsets (%s): %w", r.cfg.StartOffset, err)
	}
	for p, off := range starts {
		r.parts[p].pos.next = off
	}
	if r.cfg.Bounded {
		if err := r.bound(ctx); err != nil {
			return err
		}
	}
	offsets := map[string]map[int32]kgo.Offset{}
	for _, st := range r.order {
		if st.done {
			continue
		}
		if offsets[st.topic] == nil {
			offsets[st.topic] = map[int32]kgo.Offset{}
		}
		offsets[st.topic][st.partition] = kafkaOffset(st.pos.next)
	}
	r.cl.AddConsumePartitions(offsets)
	return nil
}

// bound gives every partition without one a stop offset (the end now) and
// makes positions concrete, so that an empty partition is known done.
func (r *reader[K, V]) bound(ctx context.Context) error {
	var noEnd, noStart []tp
	for _, st := range r.order {
		if st.pos.stop == noStop {
			noEnd = append(noEnd, st.tp)
		}
		if st.pos.next == offsetEarliest {
			noStart = append(noStart, st.tp)
		}
	}
	ends, err := listOffsets(ctx, r.cl, noEnd, listLatest, !r.cfg.ReadUncommitted)
	if err != nil {
		return fmt.Errorf("find end offsets of a bounded source: %w", err)
	}
	starts, err := listOffsets(ctx, r.cl, noStart, listEarliest, false)
	if err != nil {
		return fmt.Errorf("find start offsets of a bounded source: %w", err)
	}
	for _, st := range r.order {
		if off, ok := ends[st.tp]; ok {
			st.pos.stop = off
		}
		if off, ok := starts[st.tp]; ok {
			st.pos.next = off
		}
		if st.pos.next >= st.pos.stop {
			r.finish(st)
		}
	}
	return nil
}

func kafkaOffset(next int64) kgo.Offset {
	if next == offsetEarliest {
		return kgo.NewOffset().AtStart()
	}
	return kgo.NewOffset().At(next)
}
