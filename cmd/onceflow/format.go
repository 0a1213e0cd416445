package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onceflow/onceflow/runner"
)

func printJobs(w io.Writer, jobs []*runner.JobView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tPID\tRESTARTS\tIN/S\tOUT/S\tCHECKPOINTS\tLAST CHECKPOINT\tREASON")
	for _, j := range jobs {
		pid := ""
		if j.PID > 0 {
			pid = fmt.Sprint(j.PID)
		}
		restarts := fmt.Sprint(j.ProcessRestarts)
		if j.Engine != nil && j.Engine.Restarts > 0 {
			restarts += fmt.Sprintf("+%d", j.Engine.Restarts)
		}
		last := ""
		if len(j.Checkpoints) > 0 {
			c := j.Checkpoints[0]
			last = fmt.Sprintf("#%d %dms %s", c.ID, c.DurationMillis, humanBytes(c.Bytes))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%d\t%s\t%s\n", j.ID, j.Name, j.State, pid, restarts,
			j.InputRate, j.OutputRate, j.CheckpointsCompleted, last, truncate(j.Reason, 60))
	}
	tw.Flush()
}

func printJob(w io.Writer, j *runner.JobView) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
	row("job", fmt.Sprintf("%s (%s)", j.ID, j.Name))
	row("state", j.State)
	if j.Reason != "" {
		row("reason", j.Reason)
	}
	row("binary", j.Binary)
	if len(j.Args) > 0 {
		row("args", strings.Join(j.Args, " "))
	}
	if j.Parallelism > 0 {
		row("parallelism", j.Parallelism)
	}
	row("store", j.Store)
	row("restore from", j.Restore)
	if j.PID > 0 {
		row("pid", j.PID)
	}
	row("process restarts", j.ProcessRestarts)
	if j.NextStartAt != nil {
		row("next start", time.Until(*j.NextStartAt).Round(100*time.Millisecond).String())
	}
	if e := j.Engine; e != nil {
		row("engine", fmt.Sprintf("%s, attempt %d, %d restarts in process", e.State, e.Attempt, e.Restarts))
		if e.LastFailure != "" {
			row("last failure", truncate(e.LastFailure, 300))
		}
	}
	row("records", fmt.Sprintf("in %d (%.0f/s), out %d (%.0f/s)", j.InputRecords, j.InputRate, j.OutputRecords, j.OutputRate))
	if j.LastSavepoint != "" {
		row("last savepoint", j.LastSavepoint)
	}
	tw.Flush()
	if len(j.Operators) > 0 {
		fmt.Fprintln(w, "\nOPERATORS")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPARALLELISM\tRECORDS IN\tRECORDS OUT\tALIGNMENT\tCOMMIT")
		for _, o := range j.Operators {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\n", o.Name, o.Parallelism, o.RecordsIn, o.RecordsOut,
				time.Duration(o.LastAlignmentNanos), time.Duration(o.LastCommitNanos))
		}
		tw.Flush()
	}
	if len(j.Checkpoints) > 0 {
		fmt.Fprintln(w, "\nCHECKPOINTS (newest first)")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tKIND\tDURATION\tSIZE\tAT\tPATH")
		for i, c := range j.Checkpoints {
			if i == 5 {
				break
			}
			path := c.Path
			if c.Aborted != "" {
				path = "aborted: " + truncate(c.Aborted, 60)
			}
			fmt.Fprintf(tw, "%d\t%s\t%dms\t%s\t%s\t%s\n", c.ID, c.Kind, c.DurationMillis, humanBytes(c.Bytes), c.At.Format(time.TimeOnly), path)
		}
		tw.Flush()
	}
	if j.OutputTail != "" && !runner.Active(j.State) {
		fmt.Fprintf(w, "\nLAST OUTPUT\n%s\n", strings.ReplaceAll(j.OutputTail, " | ", "\n"))
	}
}

func printPoints(w io.Writer, pts []runner.RestorePoint) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tCREATED\tSIZE\tPATH")
	for _, p := range pts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", p.ID, p.Kind, p.CreatedAt.Local().Format(time.DateTime), humanBytes(p.Bytes), p.Path)
	}
	tw.Flush()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
