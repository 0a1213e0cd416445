package runner

import (
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// describeExit says how a process ended, for a failure reason.
func describeExit(st *os.ProcessState, waitErr error) string {
	if st == nil {
		return fmt.Sprintf("lost the process: %v", waitErr)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exit status %d", st.ExitCode())
}

// readTail returns up to n bytes of the end of path, but nothing before
// offset from (the start of the current process's output).
func readTail(path string, from int64, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil || end < from {
		return ""
	}
	start := max(from, end-n)
	buf := make([]byte, end-start)
	if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
		return ""
	}
	return string(buf)
}

// lastLines returns the last n non-empty lines of s, joined by " | ", at
// most 1000 bytes: the gist of why a process failed.
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	lines = lines[max(0, len(lines)-n):]
	out := strings.Join(lines, " | ")
	if len(out) > 1000 {
		out = "..." + out[len(out)-1000:]
	}
	return out
}

// lineWith returns the last line of s that contains sub, at most 1000 bytes.
func lineWith(s, sub string) string {
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], sub) {
			l := strings.TrimSpace(lines[i])
			if len(l) > 1000 {
				l = l[:1000] + "..."
			}
			return l
		}
	}
	return ""
}
