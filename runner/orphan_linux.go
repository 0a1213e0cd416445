package runner

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// procStart returns the start time of process pid (field 22 of
// /proc/<pid>/stat, in clock ticks since boot) and whether it is a zombie. A
// pid plus its start time names a process uniquely, even after pid reuse.
func procStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return start, fields[0] == "Z", nil
}

// procExe returns argv[0] of pid from /proc/<pid>/cmdline.
func procExe(pid int) (string, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "", err
	}
	exe, _, _ := bytes.Cut(data, []byte{0})
	return string(exe), nil
}

// killOrphan kills the process a previous runner recorded for j, if it is
// still alive and still that process (same start time and executable), and
// waits until it is gone. It reports whether it killed something.
func killOrphan(j *Job, timeout time.Duration) (bool, error) {
	if j.PID <= 0 {
		return false, nil
	}
	start, zombie, err := procStart(j.PID)
	if errors.Is(err, os.ErrNotExist) || zombie {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("job %s: inspect recorded pid %d: %w", j.ID, j.PID, err)
	}
	exe, err := procExe(j.PID)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("job %s: inspect recorded pid %d: %w", j.ID, j.PID, err)
	}
	if start != j.PIDStart || exe != j.Binary {
		return false, nil // the pid was reused by another process
	}
	// The job leads its own process group: kill the group.
	_ = syscall.Kill(-j.PID, syscall.SIGKILL)
	_ = syscall.Kill(j.PID, syscall.SIGKILL)
	deadline := time.Now().Add(timeout)
	for {
		start2, zombie, err := procStart(j.PID)
		if err != nil || zombie || start2 != start {
			return true, nil
		}
		if time.Now().After(deadline) {
			return true, fmt.Errorf("job %s: orphan pid %d still alive %s after SIGKILL", j.ID, j.PID, timeout)
		}
		// No signal tells us when a process that is not our child is gone.
		time.Sleep(10 * time.Millisecond)
	}
}
