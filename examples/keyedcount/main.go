// Command keyedcount is a self-verifying exactly-once job: a deterministic
// datagen source, a keyed count, and a file sink that publishes output on
// checkpoint completion. When its input ends it compares the committed output
// with an oracle computed from the input alone. Kill it (even with SIGKILL)
// and start it again as often as you like: the result is the same.
//
//	go run ./examples/keyedcount -records 200000 -rate 20000
//
// Keyed state lives in Pebble under -state-dir by default (-state memory
// keeps it in memory).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	_ "github.com/onceflow/onceflow/checkpoint/fsstore" // file:// checkpoint stores
	_ "github.com/onceflow/onceflow/checkpoint/s3store" // s3:// checkpoint stores
	"github.com/onceflow/onceflow/connectors/file"
	"github.com/onceflow/onceflow/engine"
	"github.com/onceflow/onceflow/engine/state"
	"github.com/onceflow/onceflow/engine/state/pebblestate"
	"github.com/onceflow/onceflow/internal/testjob"
)

func main() {
	records := flag.Uint64("records", 200000, "input records")
	keys := flag.Int("keys", 1000, "distinct keys (a multiple of 4)")
	rate := flag.Float64("rate", 0, "input records per second per source subtask, 0 = unlimited")
	out := flag.String("out", "onceflow-data/keyedcount-out", "directory of the committed output")
	verify := flag.Bool("verify", true, "check the committed output against the oracle at the end")
	backend := flag.String("state", "pebble", "keyed state backend: memory | pebble")
	stateDir := flag.String("state-dir", "", "local directory of the pebble state backend (default: keyedcount-state beside -out)")
	if err := engine.ParseFlags(); err != nil {
		fmt.Fprintln(os.Stderr, "keyedcount:", err)
		os.Exit(2)
	}
	if *keys <= 0 || *keys%testjob.Splits != 0 {
		fmt.Fprintf(os.Stderr, "keyedcount: -keys %d must be a positive multiple of %d\n", *keys, testjob.Splits)
		os.Exit(2)
	}
	var factory state.Factory
	switch *backend {
	case "memory":
		factory = state.Memory
	case "pebble":
		dir := *stateDir
		if dir == "" {
			dir = filepath.Join(filepath.Dir(*out), "keyedcount-state")
		}
		o := pebblestate.Options{Dir: dir}
		if err := o.Validate(); err != nil {
			fmt.Fprintln(os.Stderr, "keyedcount:", err)
			os.Exit(2)
		}
		factory = pebblestate.New(o)
	default:
		fmt.Fprintf(os.Stderr, "keyedcount: -state %q: want memory or pebble\n", *backend)
		os.Exit(2)
	}
	job := testjob.Build(testjob.Options{Name: "keyedcount", Records: *records, Keys: *keys, Rate: *rate, Parallelism: 1, OutDir: *out})
	// RunMain returns nil when interrupted too; only a finished input is
	// worth verifying.
	interrupted, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := engine.RunMain(job, func(c *engine.Config) { c.StateBackend = factory })
	if errors.Is(err, engine.ErrStopped) || (err == nil && interrupted.Err() != nil) {
		return // the input did not end: nothing to verify yet
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyedcount:", err)
		os.Exit(engine.ExitCode(err))
	}
	if !*verify {
		return
	}
	lines, err := file.ReadCommitted(*out, "out")
	if err == nil {
		err = testjob.Verify(lines, *records, *keys)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyedcount: verification FAILED:", err)
		os.Exit(1)
	}
	fmt.Printf("keyedcount: verified %d committed records against the oracle: exactly once\n", len(lines))
}
