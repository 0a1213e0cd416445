package runner

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// jobMetrics are counters the runner keeps per job (since it started).
type jobMetrics struct {
	completed, aborted, failures int
	lastDuration                 time.Duration
	lastBytes                    int64
}

// WriteMetrics writes every job's metrics in the Prometheus text exposition
// format (version 0.0.4).
func (r *Runner) WriteMetrics(w io.Writer) error {
	type sample struct {
		labels string
		value  float64
	}
	families := map[string][]sample{}
	add := func(name string, v float64, labels ...string) {
		var b strings.Builder
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, "%s=%q", labels[i], escapeLabel(labels[i+1]))
		}
		families[name] = append(families[name], sample{b.String(), v})
	}
	r.mu.Lock()
	for _, j := range r.tbl.Jobs {
		e := r.jobs[j.ID]
		id := j.ID
		for _, s := range []string{StateStarting, StateRunning, StateRestarting, StateStopping, StateStopped, StateFinished, StateFailed, StateCancelled} {
			v := 0.0
			if j.State == s {
				v = 1
			}
			add("onceflow_job_state", v, "job", id, "name", j.Name, "state", s)
		}
		add("onceflow_job_process_restarts_total", float64(j.ProcessRestarts), "job", id)
		add("onceflow_job_failures_total", float64(e.metrics.failures), "job", id)
		add("onceflow_job_consecutive_failures", float64(j.ConsecutiveFailures), "job", id)
		add("onceflow_checkpoints_completed_total", float64(e.metrics.completed), "job", id)
		add("onceflow_checkpoints_aborted_total", float64(e.metrics.aborted), "job", id)
		add("onceflow_checkpoint_last_duration_seconds", e.metrics.lastDuration.Seconds(), "job", id)
		add("onceflow_checkpoint_last_size_bytes", float64(e.metrics.lastBytes), "job", id)
		st := e.status
		if st == nil {
			continue
		}
		add("onceflow_job_engine_restarts_total", float64(st.Restarts), "job", id)
		for _, o := range st.Operators {
			add("onceflow_operator_records_in_total", float64(o.RecordsIn), "job", id, "operator", o.Name)
			add("onceflow_operator_records_out_total", float64(o.RecordsOut), "job", id, "operator", o.Name)
			add("onceflow_operator_parallelism", float64(o.Parallelism), "job", id, "operator", o.Name)
			add("onceflow_operator_last_alignment_seconds", float64(o.LastAlignmentNanos)/1e9, "job", id, "operator", o.Name)
			add("onceflow_operator_last_commit_seconds", float64(o.LastCommitNanos)/1e9, "job", id, "operator", o.Name)
			// Only connectors that report these have them (nil otherwise).
			if o.SourceLagRecords != nil {
				add("onceflow_source_lag_records", float64(*o.SourceLagRecords), "job", id, "operator", o.Name)
			}
			if o.OpenTransactionAgeNanos != nil {
				add("onceflow_sink_open_transaction_age_seconds", float64(*o.OpenTransactionAgeNanos)/1e9, "job", id, "operator", o.Name)
			}
		}
	}
	r.mu.Unlock()

	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		kind := "gauge"
		if strings.HasSuffix(n, "_total") {
			kind = "counter"
		}
		if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", n, metricHelp[n], n, kind); err != nil {
			return err
		}
		for _, s := range families[n] {
			if _, err := fmt.Fprintf(w, "%s{%s} %g\n", n, s.labels, s.value); err != nil {
				return err
			}
		}
	}
	return nil
}

// escapeLabel leaves the escaping of backslash, quote and newline to %q,
// which does exactly those for printable text; other control bytes, which
// %q would escape in ways Prometheus does not read, are dropped.
func escapeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return -1
		}
		return r
	}, s)
}

var metricHelp = map[string]string{
	"onceflow_job_state":                         "1 for the job's current runner state, 0 for the others.",
	"onceflow_job_process_restarts_total":        "Job processes started again by the runner after a crash.",
	"onceflow_job_failures_total":                "Job process failures seen by this runner.",
	"onceflow_job_consecutive_failures":          "Failures in a row without progress (crash loop when > 1).",
	"onceflow_job_engine_restarts_total":         "Restarts inside the current job process (engine restart strategy).",
	"onceflow_checkpoints_completed_total":       "Completed checkpoints and savepoints seen by this runner.",
	"onceflow_checkpoints_aborted_total":         "Aborted checkpoints seen by this runner.",
	"onceflow_checkpoint_last_duration_seconds":  "Duration of the last completed checkpoint.",
	"onceflow_checkpoint_last_size_bytes":        "Size of the last completed checkpoint's state.",
	"onceflow_operator_records_in_total":         "Records an operator received in the current job process.",
	"onceflow_operator_records_out_total":        "Records an operator emitted in the current job process.",
	"onceflow_operator_parallelism":              "Parallelism of an operator.",
	"onceflow_operator_last_alignment_seconds":   "Longest barrier alignment of the operator's subtasks in the last checkpoint.",
	"onceflow_operator_last_commit_seconds":      "Longest sink commit of the operator's subtasks after the last checkpoint.",
	"onceflow_source_lag_records":                "Records a source is behind the end of its input, summed over its subtasks.",
	"onceflow_sink_open_transaction_age_seconds": "Age of the oldest open transaction of a sink's subtasks (0: none open).",
}
