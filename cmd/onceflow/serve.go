package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/runner"
	"github.com/onceflow/onceflow/runner/api"
)

type serveFlags struct {
	addr, data, token, root string
	poll                    time.Duration
	logJSON                 bool
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", envOr("ONCEFLOW_ADDR", "127.0.0.1:8081"), "listen address of the REST API, metrics and page (env ONCEFLOW_ADDR); non-loopback needs --token")
	fs.StringVar(&f.data, "data", envOr("ONCEFLOW_DATA", filepath.Join("onceflow-data", "runner")), "data directory: job table, binaries, logs, checkpoints (env ONCEFLOW_DATA)")
	fs.StringVar(&f.token, "token", os.Getenv("ONCEFLOW_TOKEN"), "API token clients must send as a bearer token (env ONCEFLOW_TOKEN)")
	fs.StringVar(&f.root, "checkpoint-root", os.Getenv("ONCEFLOW_CHECKPOINT_ROOT"), "checkpoint store root URL; each job gets <root>/<job id> (default file://<data>/checkpoints; env ONCEFLOW_CHECKPOINT_ROOT)")
	fs.DurationVar(&f.poll, "poll", time.Second, "how often job status is read")
	fs.BoolVar(&f.logJSON, "log-json", false, "log as JSON lines instead of text")
}

func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var f serveFlags
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return errors.Join(errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rt, err := startRunner(f)
	if err != nil {
		return err
	}
	fmt.Printf("onceflow: runner listening on %s (data %s)\n", rt.url, rt.data)
	return rt.wait(ctx)
}

// runningRunner is a Runner with its HTTP server.
type runningRunner struct {
	r      *runner.Runner
	srv    *http.Server
	url    string
	data   string
	served chan error
	log    *slog.Logger
}

func newLogger(asJSON bool) *slog.Logger {
	if asJSON {
		return slog.New(slog.NewJSONHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, nil))
}

// startRunner checks the bind, opens the runner and serves its API.
func startRunner(f serveFlags) (*runningRunner, error) {
	if err := api.CheckBind(f.addr, f.token); err != nil {
		return nil, errors.Join(errUsage, err)
	}
	log := newLogger(f.logJSON)
	r, err := runner.Open(runner.Config{DataDir: f.data, CheckpointRoot: f.root, PollInterval: f.poll, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("listen on %s: %w", f.addr, err)
	}
	srv := api.NewServer(r, api.Config{Token: f.token, Logger: log})
	rt := &runningRunner{r: r, srv: srv, url: "http://" + ln.Addr().String(), data: f.data, served: make(chan error, 1), log: log}
	if abs, err := filepath.Abs(f.data); err == nil {
		rt.data = abs
	}
	go func() { rt.served <- srv.Serve(ln) }()
	return rt, nil
}

// wait serves until ctx is done, then shuts the server down and stops the
// job processes. Their states are kept: the next start resumes them.
func (rt *runningRunner) wait(ctx context.Context) error {
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-rt.served:
	}
	return rt.close(serveErr)
}

func (rt *runningRunner) close(serveErr error) error {
	rt.log.Info("runner shutting down; jobs resume at the next start")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = rt.srv.Shutdown(sctx)
	if serveErr == nil {
		if err := <-rt.served; !errors.Is(err, http.ErrServerClosed) {
			serveErr = err
		}
	}
	if errors.Is(serveErr, http.ErrServerClosed) {
		serveErr = nil
	}
	return errors.Join(serveErr, rt.r.Close())
}
