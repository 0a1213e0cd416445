// Command onceflow runs Onceflow jobs: a runner daemon (serve), a
// development environment with an embedded Kafka broker (dev), a demo, and
// a CLI over the runner's REST API.
//
//	onceflow serve [--addr 127.0.0.1:8081] [--data DIR] [--token T]
//	onceflow dev   [--kafka 127.0.0.1:9092] [--addr ...] [--data DIR]
//	onceflow demo  (dev + build and submit the word count and a load generator)
//	onceflow submit | jobs | status | checkpoint | savepoint | stop | cancel |
//	         restore | checkpoints | savepoints | delete-savepoint | delete
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"sort"
)

type command struct {
	usage string
	run   func(args []string) error
}

var commands = map[string]command{
	"serve":            {"run the runner daemon", runServe},
	"dev":              {"run an embedded Kafka broker and the runner, for development", runDev},
	"demo":             {"dev, plus the word count and a load generator, with live progress", runDemo},
	"submit":           {"submit a job binary: submit [flags] BINARY [-- ARGS...]", runSubmit},
	"jobs":             {"list jobs", runJobs},
	"status":           {"show a job: status JOB", runStatus},
	"checkpoint":       {"trigger a checkpoint: checkpoint JOB", runTrigger("checkpoint")},
	"savepoint":        {"trigger a savepoint: savepoint JOB", runTrigger("savepoint")},
	"stop":             {"stop a job with a savepoint: stop JOB", runTrigger("stop")},
	"cancel":           {"cancel a job (no savepoint): cancel JOB", runCancel},
	"restore":          {"restart a job from a checkpoint or savepoint: restore JOB [PATH|latest]", runRestore},
	"checkpoints":      {"list a job's checkpoints and savepoints: checkpoints JOB", runCheckpoints},
	"savepoints":       {"list every job's savepoints", runSavepoints},
	"delete-savepoint": {"delete a savepoint: delete-savepoint PATH", runDeleteSavepoint},
	"delete":           {"delete an ended job, its checkpoints and uploaded binary: delete JOB", runDelete},
}

// errUsage marks a bad command line (exit status 2).
var errUsage = errors.New("usage")

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "onceflow: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err := cmd.run(os.Args[2:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "onceflow %s: %v\n", os.Args[1], err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: onceflow COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-17s %s\n", n, commands[n].usage)
	}
	fmt.Fprintln(os.Stderr, "\nRun onceflow COMMAND -h for its flags.")
}

// envOr returns the variable's value, or def.
func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
