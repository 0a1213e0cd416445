package runner

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Children must die with the runner, even when it is SIGKILLed: otherwise a
// restarted runner would start a second incarnation of a job next to the
// first. Linux delivers the parent-death signal when the *thread* that forked
// the child exits, and the Go runtime may end an idle thread at any time. So
// every child is forked by one goroutine locked to its OS thread that never
// returns: that thread lives exactly as long as the process. (The runner also
// kills recorded orphans at startup, in case a child outlived its parent.)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

// spawn starts cmd from the forking thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go forker(spawnReqs) // owned by the process: it must never exit
	})
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// Its own process group: a Ctrl-C in the runner's terminal reaches the
	// runner, which stops its jobs in order, and not the jobs directly.
	cmd.SysProcAttr.Setpgid = true
	r := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnReqs <- r
	return <-r.done
}

func forker(reqs <-chan spawnReq) {
	runtime.LockOSThread()
	// Never UnlockOSThread and never return: see above.
	for r := range reqs {
		r.done <- r.cmd.Start()
	}
}
