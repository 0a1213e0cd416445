// Package engine is Onceflow's job API and runtime: typed streams built into a
// graph (this file and stream.go), executed as one goroutine per operator
// subtask with barrier checkpoints (attempt.go), restored after failures under
// a restart strategy (run.go).
package engine

import (
	"errors"
	"fmt"

	"github.com/onceflow/onceflow/checkpoint"
)

// DefaultMaxParallelism is the number of key groups of a job unless set: the
// highest parallelism any keyed operator can ever be rescaled to.
const DefaultMaxParallelism = 128

// Job is a dataflow graph under construction. Building never panics: mistakes
// are collected and reported by Validate (and so by Run).
type Job struct {
	name               string
	maxParallelism     int
	defaultParallelism int
	vertices           []*vertex
	byName             map[string]*vertex
	edges              []anyEdge
	errs               []error
}

// JobOption configures a job at creation.
type JobOption func(*Job)

// WithMaxParallelism sets the number of key groups (fixed for the life of the
// job's state: changing it makes earlier checkpoints unreadable).
func WithMaxParallelism(n int) JobOption { return func(j *Job) { j.maxParallelism = n } }

// WithDefaultParallelism sets the parallelism of operators that do not set
// their own.
func WithDefaultParallelism(n int) JobOption { return func(j *Job) { j.defaultParallelism = n } }

// NewJob starts a job graph. The name identifies the job's checkpoints.
func NewJob(name string, opts ...JobOption) *Job {
	j := &Job{name: name, maxParallelism: DefaultMaxParallelism, defaultParallelism: 1, byName: map[string]*vertex{}}
	for _, o := range opts {
		o(j)
	}
	return j
}

// Name returns the job's name.
func (j *Job) Name() string { return j.name }

// MaxParallelism returns the number of key groups.
func (j *Job) MaxParallelism() int { return j.maxParallelism }

type vertexKind int

const (
	kindSource vertexKind = iota
	kindOperator
	kindSink
)

func (k vertexKind) String() string {
	return [...]string{"source", "operator", "sink"}[k]
}

// vertex is one operator of the logical graph, type-erased: the typed
// constructors capture the types in newTask.
type vertex struct {
	name        string
	kind        vertexKind
	parallelism int
	// parallelismSet tells an explicit value (validated, even when bad)
	// from the job's default.
	parallelismSet bool
	keyed          bool
	inputs         []anyEdge
	outputs        []anyEdge
	// newTask builds the runner of one subtask for one attempt.
	newTask func(env *taskEnv) (taskRunner, error)
}

// OperatorOption configures one operator.
type OperatorOption func(*vertex)

// Parallelism sets how many subtasks run the operator.
func Parallelism(n int) OperatorOption {
	return func(v *vertex) { v.parallelism, v.parallelismSet = n, true }
}

func (j *Job) addVertex(name string, kind vertexKind, opts []OperatorOption) *vertex {
	v := &vertex{name: name, kind: kind}
	for _, o := range opts {
		o(v)
	}
	if _, dup := j.byName[name]; dup {
		j.errs = append(j.errs, fmt.Errorf("operator name %q used twice: names are state identities and must be unique", name))
	} else {
		j.byName[name] = v
	}
	j.vertices = append(j.vertices, v)
	return v
}

func (j *Job) parallelismOf(v *vertex) int {
	if v.parallelismSet {
		return v.parallelism
	}
	return j.defaultParallelism
}

// Validate checks the graph: names, parallelism, sinks, unconsumed streams,
// cycles. Run calls it first.
func (j *Job) Validate() error {
	errs := append([]error(nil), j.errs...)
	if err := checkpoint.ValidName(j.name); err != nil || containsSlash(j.name) {
		errs = append(errs, fmt.Errorf("job name %q: must be one path segment of A-Z a-z 0-9 . _ -", j.name))
	}
	if j.maxParallelism < 1 || j.maxParallelism > 1<<15 {
		errs = append(errs, fmt.Errorf("max parallelism %d: must be in 1..32768", j.maxParallelism))
	}
	if j.defaultParallelism < 1 {
		errs = append(errs, fmt.Errorf("default parallelism %d: must be at least 1", j.defaultParallelism))
	}
	sinks := 0
	for _, v := range j.vertices {
		if err := checkpoint.ValidName(v.name); err != nil || containsSlash(v.name) {
			errs = append(errs, fmt.Errorf("operator name %q: must be one path segment of A-Z a-z 0-9 . _ -", v.name))
		}
		p := j.parallelismOf(v)
		switch {
		case p < 1:
			errs = append(errs, fmt.Errorf("operator %q: parallelism %d must be at least 1", v.name, p))
		case p > j.maxParallelism:
			errs = append(errs, fmt.Errorf("operator %q: parallelism %d exceeds the job's max parallelism %d", v.name, p, j.maxParallelism))
		}
		if v.kind == kindSink {
			sinks++
		}
		if v.kind != kindSink && len(v.outputs) == 0 {
			errs = append(errs, fmt.Errorf("%s %q: its output is never consumed (add a sink or remove it)", v.kind, v.name))
		}
		if v.kind != kindSource && len(v.inputs) == 0 {
			errs = append(errs, fmt.Errorf("%s %q has no input", v.kind, v.name))
		}
	}
	if len(j.vertices) > 0 && sinks == 0 {
		errs = append(errs, errors.New("job has no sink: nothing it computes would be kept"))
	}
	if len(j.vertices) == 0 {
		errs = append(errs, errors.New("job has no operators"))
	}
	if err := j.checkAcyclic(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid job %q: %w", j.name, errors.Join(errs...))
	}
	return nil
}

// checkAcyclic runs Kahn's algorithm. The typed API cannot build a cycle, but
// the runtime relies on there being none, so it is checked rather than assumed.
func (j *Job) checkAcyclic() error {
	indeg := map[*vertex]int{}
	for _, v := range j.vertices {
		indeg[v] = len(v.inputs)
	}
	var queue []*vertex
	for _, v := range j.vertices {
		if indeg[v] == 0 {
			queue = append(queue, v)
		}
	}
	seen := 0
	for len(queue) > 0 {
		v := queue[0]
		queue = queue[1:]
		seen++
		for _, e := range v.outputs {
			to := e.ends().to
			indeg[to]--
			if indeg[to] == 0 {
				queue = append(queue, to)
			}
		}
	}
	if seen != len(j.vertices) {
		return errors.New("job graph has a cycle")
	}
	return nil
}

func containsSlash(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return true
		}
	}
	return false
}
