package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/runner"
)

// demoJob is one job the demo builds and submits.
type demoJob struct {
	name, pkg string
	args      []string
}

var demoJobs = []demoJob{
	{name: "loadgen", pkg: "github.com/onceflow/onceflow/examples/wordcount/loadgen", args: []string{"-topic", "lines"}},
	{name: "wordcount", pkg: "github.com/onceflow/onceflow/examples/wordcount", args: []string{"-in", "lines", "-out", "counts"}},
}

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	var f devFlags
	f.register(fs)
	rate := fs.Int("rate", 2000, "lines per second the load generator writes")
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := startDev(f)
	if err != nil {
		return err
	}
	d.printBanner()
	ids, err := submitDemo(ctx, d, *rate)
	if err != nil {
		return errors.Join(err, d.close(nil))
	}
	fmt.Printf("\nlive progress (Ctrl-C to stop; the jobs resume where they were at the next `demo`):\n")
	var serveErr error
	t := time.NewTicker(time.Second)
	defer t.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case serveErr = <-d.rt.served:
			break loop
		case <-t.C:
			printProgress(d.rt.r, ids)
		}
	}
	fmt.Println()
	return d.close(serveErr)
}

// submitDemo builds the example binaries and submits them, unless jobs of
// those names are already active (the demo was run before in this directory
// and its jobs were resumed by the runner).
func submitDemo(ctx context.Context, d *devEnv, rate int) ([]string, error) {
	active := map[string]string{}
	for _, j := range d.rt.r.Jobs() {
		if runner.Active(j.State) {
			active[j.Name] = j.ID
		}
	}
	binDir := filepath.Join(d.rt.data, "build")
	var ids []string
	for _, dj := range demoJobs {
		if id, ok := active[dj.name]; ok {
			fmt.Printf("%s: already running as job %s (resumed)\n", dj.name, id)
			ids = append(ids, id)
			continue
		}
		bin := filepath.Join(binDir, dj.name)
		fmt.Printf("%s: go build %s\n", dj.name, dj.pkg)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, dj.pkg)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build %s (run the demo from the onceflow repository): %w", dj.pkg, err)
		}
		args := dj.args
		if dj.name == "loadgen" {
			args = append(args, "-rate", fmt.Sprint(rate)) // one source subtask reads every split
		}
		v, err := d.rt.r.Submit(ctx, runner.SubmitRequest{Name: dj.name, Path: bin, Args: args})
		if err != nil {
			return nil, fmt.Errorf("submit %s: %w", dj.name, err)
		}
		fmt.Printf("%s: submitted as job %s\n", dj.name, v.ID)
		ids = append(ids, v.ID)
	}
	return ids, nil
}

func printProgress(r *runner.Runner, ids []string) {
	var parts []string
	for _, id := range ids {
		j, err := r.Get(id)
		if err != nil {
			continue
		}
		last := "-"
		if len(j.Checkpoints) > 0 {
			last = fmt.Sprintf("%dms", j.Checkpoints[0].DurationMillis)
		}
		parts = append(parts, fmt.Sprintf("%s %s in %6.0f/s out %6.0f/s checkpoints %4d last %s",
			j.Name, j.State, j.InputRate, j.OutputRate, j.CheckpointsCompleted, last))
	}
	fmt.Printf("%s  %s\n", time.Now().Format(time.TimeOnly), strings.Join(parts, " | "))
}
