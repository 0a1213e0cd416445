// Package runner runs Onceflow jobs as supervised child processes: the core of
// `onceflow serve`.
//
// A job is a Go binary built with the SDK (engine.Main). The runner starts it
// with its configuration in ONCEFLOW_* variables (checkpoint store, restore
// point, parallelism, control socket), reads its status and sends it
// checkpoint, savepoint and stop commands over the control socket
// (engine.ServeControl), and restarts it after a crash from its newest
// completed checkpoint.
//
// The job table is durable in the data directory (jobs.json, written to a
// temporary file, fsynced and renamed). When the runner itself dies, its
// children die with it (Linux parent-death signal), and when it starts again
// every job that was meant to run is started again, restored from its latest
// checkpoint; processes a previous runner left behind are found by their
// recorded pid and start time and killed first.
//
// Layout of the data directory:
//
//	runner.lock            flock: one runner per data directory
//	jobs.json              the job table
//	bin/<sha256>           uploaded job binaries
//	jobs/<id>/work/        a job's working directory
//	jobs/<id>/output.log   its stdout and stderr, every process appended
//	checkpoints/<id>/      its checkpoint store (default root; see Config)
//	run/<id>.sock          its control socket
package runner
