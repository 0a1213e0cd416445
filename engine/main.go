package engine

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/onceflow/onceflow/checkpoint"
)

// mainFlags are the flags of a job binary; each can also be set by its
// ONCEFLOW_* variable. They are registered on flag.CommandLine only when a job
// binary calls ParseFlags (or Main), so importing the engine adds no flags.
type mainFlags struct {
	store, restore, restart       string
	interval, timeout             time.Duration
	retained, tolerable, parallel int
	allowDrops                    bool
}

var (
	flagsOnce sync.Once
	flags     mainFlags
	errFlags  error
)

func (f *mainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.store, "checkpoint-store", "", "checkpoint store URL: file:///abs/dir or s3://bucket/prefix (env ONCEFLOW_CHECKPOINT_STORE; default file://<cwd>/onceflow-data/checkpoints)")
	fs.DurationVar(&f.interval, "checkpoint-interval", time.Second, "time between checkpoints, 0 = off (env ONCEFLOW_CHECKPOINT_INTERVAL)")
	fs.DurationVar(&f.timeout, "checkpoint-timeout", time.Minute, "checkpoint timeout (env ONCEFLOW_CHECKPOINT_TIMEOUT)")
	fs.IntVar(&f.retained, "checkpoints-retained", 2, "completed checkpoints kept (env ONCEFLOW_CHECKPOINTS_RETAINED)")
	fs.IntVar(&f.tolerable, "tolerable-checkpoint-failures", 0, "consecutive failed checkpoints tolerated (env ONCEFLOW_TOLERABLE_CHECKPOINT_FAILURES)")
	fs.StringVar(&f.restore, "restore", "latest", "latest | none | object name of a checkpoint or savepoint manifest (env ONCEFLOW_RESTORE)")
	fs.IntVar(&f.parallel, "parallelism", 0, "default operator parallelism, 0 = the job's (env ONCEFLOW_PARALLELISM)")
	fs.StringVar(&f.restart, "restart", "fixed:-1:1s", "restart strategy: none | fixed:MAX:DELAY | exponential:INITIAL:MAX | failure-rate:N:INTERVAL:DELAY (env ONCEFLOW_RESTART)")
	fs.BoolVar(&f.allowDrops, "allow-non-restored-state", false, "restore even if the checkpoint holds state of operators the job no longer has (env ONCEFLOW_ALLOW_NON_RESTORED_STATE)")
}

// ParseFlags parses the command line and the ONCEFLOW_* environment once.
// Job binaries that define flags of their own call it before building the
// job; Main calls it too.
func ParseFlags() error {
	flagsOnce.Do(func() {
		flags.register(flag.CommandLine)
		flag.Parse()
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		env := map[string]string{
			"checkpoint-store": "ONCEFLOW_CHECKPOINT_STORE", "checkpoint-interval": "ONCEFLOW_CHECKPOINT_INTERVAL",
			"checkpoint-timeout": "ONCEFLOW_CHECKPOINT_TIMEOUT", "checkpoints-retained": "ONCEFLOW_CHECKPOINTS_RETAINED",
			"tolerable-checkpoint-failures": "ONCEFLOW_TOLERABLE_CHECKPOINT_FAILURES", "restore": "ONCEFLOW_RESTORE",
			"parallelism": "ONCEFLOW_PARALLELISM", "restart": "ONCEFLOW_RESTART",
			"allow-non-restored-state": "ONCEFLOW_ALLOW_NON_RESTORED_STATE",
		}
		for name, key := range env {
			v, ok := os.LookupEnv(key)
			if !ok || set[name] { // an explicit flag wins over the environment
				continue
			}
			if err := flag.Set(name, v); err != nil {
				errFlags = fmt.Errorf("environment %s=%q: %w", key, v, err)
				return
			}
		}
	})
	return errFlags
}

// ConfigFromFlags builds a Config from the parsed flags and environment,
// opening the checkpoint store (its package must be imported, for example
// github.com/onceflow/onceflow/checkpoint/fsstore, to register its scheme).
func ConfigFromFlags(ctx context.Context) (Config, error) {
	if err := ParseFlags(); err != nil {
		return Config{}, err
	}
	url := flags.store
	if url == "" {
		wd, err := os.Getwd()
		if err != nil {
			return Config{}, fmt.Errorf("default checkpoint store: %w", err)
		}
		url = "file://" + filepath.Join(wd, "onceflow-data", "checkpoints")
	}
	restart, err := ParseRestartStrategy(flags.restart)
	if err != nil {
		return Config{}, err
	}
	store, err := checkpoint.Open(ctx, url)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{
		Store: store, CheckpointInterval: flags.interval, CheckpointTimeout: flags.timeout,
		Retained: flags.retained, TolerableFailures: flags.tolerable, Restore: flags.restore,
		Parallelism: flags.parallel, Restart: restart, AllowNonRestoredState: flags.allowDrops,
	}
	return cfg, cfg.Validate()
}

// Main runs job with the configuration of the command line and environment
// until it finishes or receives SIGINT/SIGTERM, and exits the process with
// ExitCode: 0 on success or interruption, 1 on a failure, 2 on bad
// configuration, 3 on a failure that restarting cannot fix.
func Main(job *Job, configure ...func(*Config)) {
	err := RunMain(job, configure...)
	if err != nil && !errors.Is(err, ErrStopped) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", job.Name(), err)
	}
	os.Exit(ExitCode(err))
}

// Exit statuses of job binaries, which the runner reads to decide whether to
// restart a job process.
const (
	ExitFailure   = 1 // failed; restarting from the latest checkpoint may help
	ExitConfig    = 2 // bad command line or environment
	ExitPermanent = 3 // failed in a way restarting cannot fix (IsPermanent)
)

// ExitCode maps an error of RunMain to the process exit status.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, ErrStopped):
		return 0
	case IsConfigError(err):
		return ExitConfig
	case IsPermanent(err):
		return ExitPermanent
	}
	return ExitFailure
}

// ErrStopped is returned by RunMain when the job ended because the runner
// stopped it with a savepoint: its input did not end.
var ErrStopped = errors.New("stopped with a savepoint")

// RunMain is Main without the exit: it returns nil when the job finished or
// was interrupted and ErrStopped when it was stopped with a savepoint, so
// that a job binary can do more afterwards (such as verifying its output). The configure functions adjust the configuration
// read from flags and environment (a state backend, a fault hook) before the
// job runs; under the runner the control socket is served either way.
func RunMain(job *Job, configure ...func(*Config)) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := ConfigFromFlags(ctx)
	if err != nil {
		return configError{err}
	}
	for _, f := range configure {
		f(&cfg)
	}
	ln, err := listenControl()
	if err != nil {
		return configError{err}
	}
	if ln != nil {
		cfg.Control = NewControl()
		srvCtx, stopServer := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- ServeControl(srvCtx, ln, cfg.Control) }()
		// The server lives exactly as long as the job: stop and join it.
		defer func() {
			stopServer()
			if err := <-served; err != nil {
				slog.Error("control server", "job", job.Name(), "err", err)
			}
		}()
	}
	err = Run(ctx, job, cfg)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil
	}
	if err == nil && cfg.Control != nil && cfg.Control.Stopped() {
		return ErrStopped
	}
	return err
}

// IsConfigError reports whether err (from RunMain) is a bad command line or
// environment rather than a failure of the job.
func IsConfigError(err error) bool {
	var ce configError
	return errors.As(err, &ce)
}

// configError marks a bad command line or environment (exit status 2).
type configError struct{ error }

func (e configError) Unwrap() error { return e.error }
