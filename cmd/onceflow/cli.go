package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/onceflow/onceflow/runner"
	"github.com/onceflow/onceflow/runner/client"
)

// cliFlags are the flags every client command takes.
type cliFlags struct {
	runner, token string
	json          bool
	timeout       time.Duration
}

func newCLI(name string) (*flag.FlagSet, *cliFlags) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c := &cliFlags{}
	fs.StringVar(&c.runner, "runner", envOr("ONCEFLOW_RUNNER", client.DefaultURL), "runner URL (env ONCEFLOW_RUNNER)")
	fs.StringVar(&c.token, "token", os.Getenv("ONCEFLOW_TOKEN"), "API token (env ONCEFLOW_TOKEN)")
	fs.BoolVar(&c.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Minute, "how long to wait for the runner")
	return fs, c
}

// parse parses args, flags before or after the positional arguments
// ("status j1 --json"), and checks the number of positional arguments, which
// it returns.
func parse(fs *flag.FlagSet, args []string, min, max int, what string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, errors.Join(errUsage, err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...) // after "--": all positional
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if n := len(pos); n < min || (max >= 0 && n > max) {
		return nil, fmt.Errorf("%w: onceflow %s %s", errUsage, fs.Name(), what)
	}
	return pos, nil
}

func (c *cliFlags) client() (*client.Client, context.Context, context.CancelFunc, error) {
	cl, err := client.New(c.runner, c.token)
	if err != nil {
		return nil, nil, nil, errors.Join(errUsage, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	return cl, ctx, cancel, nil
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// kvFlag collects repeated KEY=VALUE flags.
type kvFlag map[string]string

func (m kvFlag) String() string { return fmt.Sprint(map[string]string(m)) }
func (m kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", s)
	}
	m[k] = v
	return nil
}

func runSubmit(args []string) error {
	fs, c := newCLI("submit")
	name := fs.String("name", "", "job name (default: the binary's file name)")
	par := fs.Int("parallelism", 0, "default operator parallelism (0 = the job's own)")
	cfg, env := kvFlag{}, kvFlag{}
	fs.Var(cfg, "config", "engine setting KEY=VALUE, repeatable (checkpoint-interval, checkpoint-timeout, checkpoints-retained, tolerable-checkpoint-failures, restart, allow-non-restored-state)")
	fs.Var(env, "env", "environment variable KEY=VALUE for the job, repeatable")
	restart := fs.String("restart", "", "process restart policy: none | fixed:MAX:DELAY | exponential:INITIAL:MAX (default "+runner.DefaultRestart+")")
	from := fs.String("from", "", "start from this checkpoint or savepoint path (see onceflow checkpoints)")
	remote := fs.Bool("remote-path", false, "BINARY is a path on the runner's machine: do not upload it")
	// Flags stop at BINARY: what follows are the job's own arguments.
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	if fs.NArg() < 1 {
		return fmt.Errorf("%w: onceflow submit [flags] BINARY [-- ARGS...]", errUsage)
	}
	bin, jobArgs := fs.Arg(0), fs.Args()[1:]
	if len(jobArgs) > 0 && jobArgs[0] == "--" {
		jobArgs = jobArgs[1:]
	}
	cl, ctx, cancel, err := c.client()
	if err != nil {
		return err
	}
	defer cancel()
	req := runner.SubmitRequest{Name: *name, Args: jobArgs, Parallelism: *par, Config: cfg, Env: env, Restart: *restart, From: *from}
	if req.Name == "" {
		req.Name = filepath.Base(bin)
	}
	if *remote {
		req.Path = bin
	} else {
		f, err := os.Open(bin)
		if err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		up, err := cl.Upload(ctx, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", bin, err)
		}
		req.Binary = up.Binary
	}
	v, err := cl.Submit(ctx, req)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(v)
	}
	fmt.Printf("submitted job %s (%s): %s\n", v.ID, v.Name, v.State)
	return nil
}

// call connects to the runner, makes one request, and prints its answer as
// JSON (--json) or with show: the shape of every client command.
func call[T any](c *cliFlags, do func(*client.Client, context.Context) (T, error), show func(T)) error {
	cl, ctx, cancel, err := c.client()
	if err != nil {
		return err
	}
	defer cancel()
	v, err := do(cl, ctx)
	if err != nil {
		return err
	}
	if c.json {
		return printJSON(v)
	}
	show(v)
	return nil
}

func runJobs(args []string) error {
	fs, c := newCLI("jobs")
	if _, err := parse(fs, args, 0, 0, "[flags]"); err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) ([]*runner.JobView, error) { return cl.Jobs(ctx) },
		func(v []*runner.JobView) { printJobs(os.Stdout, v) })
}

func runStatus(args []string) error {
	fs, c := newCLI("status")
	pos, err := parse(fs, args, 1, 1, "[flags] JOB")
	if err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) (*runner.JobView, error) { return cl.Job(ctx, pos[0]) },
		func(v *runner.JobView) { printJob(os.Stdout, v) })
}

func runTrigger(act string) func([]string) error {
	return func(args []string) error {
		fs, c := newCLI(act)
		pos, err := parse(fs, args, 1, 1, "[flags] JOB")
		if err != nil {
			return err
		}
		return call(c, func(cl *client.Client, ctx context.Context) (*runner.SavepointResult, error) {
			return cl.Trigger(ctx, pos[0], act, c.timeout)
		}, func(res *runner.SavepointResult) {
			verb := map[string]string{"checkpoint": "checkpoint", "savepoint": "savepoint", "stop": "stopped with savepoint"}[act]
			fmt.Printf("%s %d completed in %d ms (%s)\n  path: %s\n", verb, res.ID, res.DurationMillis, humanBytes(res.Bytes), res.Path)
		})
	}
}

func runCancel(args []string) error {
	fs, c := newCLI("cancel")
	pos, err := parse(fs, args, 1, 1, "[flags] JOB")
	if err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) (*runner.JobView, error) { return cl.Cancel(ctx, pos[0]) },
		func(v *runner.JobView) { fmt.Printf("cancelling job %s\n", v.ID) })
}

func runRestore(args []string) error {
	fs, c := newCLI("restore")
	par := fs.Int("parallelism", -1, "new default parallelism (-1 keeps the job's)")
	pos, err := parse(fs, args, 1, 2, "[flags] JOB [PATH|latest]")
	if err != nil {
		return err
	}
	req := runner.RestoreRequest{From: arg(pos, 1)}
	if *par >= 0 {
		req.Parallelism = par
	}
	return call(c, func(cl *client.Client, ctx context.Context) (*runner.JobView, error) {
		return cl.Restore(ctx, pos[0], req)
	},
		func(v *runner.JobView) { fmt.Printf("restoring job %s from %s\n", v.ID, orDefault(req.From, "latest")) })
}

func runCheckpoints(args []string) error {
	fs, c := newCLI("checkpoints")
	pos, err := parse(fs, args, 1, 1, "[flags] JOB")
	if err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) ([]runner.RestorePoint, error) {
		return cl.Checkpoints(ctx, pos[0])
	},
		func(pts []runner.RestorePoint) { printPoints(os.Stdout, pts) })
}

func runSavepoints(args []string) error {
	fs, c := newCLI("savepoints")
	if _, err := parse(fs, args, 0, 0, "[flags]"); err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) ([]runner.RestorePoint, error) { return cl.Savepoints(ctx) },
		func(pts []runner.RestorePoint) { printPoints(os.Stdout, pts) })
}

func runDeleteSavepoint(args []string) error {
	fs, c := newCLI("delete-savepoint")
	pos, err := parse(fs, args, 1, 1, "[flags] PATH")
	if err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) (map[string]string, error) {
		return map[string]string{"deleted": pos[0]}, cl.DeleteSavepoint(ctx, pos[0])
	}, func(map[string]string) { fmt.Printf("deleted savepoint %s\n", pos[0]) })
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func arg(pos []string, i int) string {
	if i < len(pos) {
		return pos[i]
	}
	return ""
}

func runDelete(args []string) error {
	fs, c := newCLI("delete")
	pos, err := parse(fs, args, 1, 1, "[flags] JOB")
	if err != nil {
		return err
	}
	return call(c, func(cl *client.Client, ctx context.Context) (map[string]string, error) {
		return map[string]string{"deleted": pos[0]}, cl.DeleteJob(ctx, pos[0])
	}, func(map[string]string) { fmt.Printf("deleted job %s\n", pos[0]) })
}
