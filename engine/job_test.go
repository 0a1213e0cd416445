package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/engine/state"
)

type nopSource struct{}

func (nopSource) NewReader(*SourceContext) (SourceReader[int], error) { return nil, nil }

type nopWriter struct{}

func (nopWriter) Write(context.Context, []int) error { return nil }

func newNopWriter(*Context) (SinkWriter[int], error) { return nopWriter{}, nil }

type identity struct{}

func (identity) Open(*Context) error { return nil }
func (identity) ProcessBatch(in []int, out *Output[int]) error {
	for _, v := range in {
		out.Emit(v)
	}
	return nil
}

func newIdentity() Operator[int, int] { return identity{} }

func TestValidateGraph(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func() *Job
		want  []string
	}{
		{"ok", func() *Job {
			j := NewJob("ok")
			Sink(Transform(FromSource[int](j, "src", nopSource{}), "map", newIdentity), "out", newNopWriter)
			return j
		}, nil},
		{"duplicate names", func() *Job {
			j := NewJob("dup")
			s := FromSource[int](j, "x", nopSource{})
			Sink(Transform(s, "x", newIdentity), "out", newNopWriter)
			return j
		}, []string{`operator name "x" used twice`}},
		{"no sink", func() *Job {
			j := NewJob("nosink")
			Transform(FromSource[int](j, "src", nopSource{}), "map", newIdentity)
			return j
		}, []string{"job has no sink", `operator "map": its output is never consumed`}},
		{"bad parallelism", func() *Job {
			j := NewJob("par", WithMaxParallelism(8))
			s := FromSource[int](j, "src", nopSource{}, Parallelism(0))
			Sink(Transform(s, "map", newIdentity, Parallelism(9)), "out", newNopWriter)
			return j
		}, []string{`operator "src": parallelism 0 must be at least 1`, `operator "map": parallelism 9 exceeds the job's max parallelism 8`}},
		{"bad names", func() *Job {
			j := NewJob("a/b")
			Sink(FromSource[int](j, "s p", nopSource{}), "out", newNopWriter)
			return j
		}, []string{`job name "a/b"`, `operator name "s p"`}},
		{"empty job", func() *Job { return NewJob("empty") }, []string{"job has no operators"}},
		{"keyed by", func() *Job {
			j := NewJob("keyed")
			ks := KeyBy(FromSource[int](j, "src", nopSource{}), func(v int) int64 { return int64(v) }, state.Int64)
			Sink(TransformKeyed(ks, "count", func() KeyedOperator[int64, int, int] { return nil }), "out", newNopWriter)
			return j
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.build().Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	j := NewJob("cfg")
	Sink(FromSource[int](j, "src", nopSource{}), "out", newNopWriter)
	err := Run(context.Background(), j, Config{CheckpointInterval: -1})
	if err == nil || !strings.Contains(err.Error(), "no checkpoint store") || !strings.Contains(err.Error(), "checkpoint interval -1ns") {
		t.Fatalf("got %v", err)
	}
}
