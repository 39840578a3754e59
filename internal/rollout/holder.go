package rollout

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Stamped returns h with the start time of its process, so that a later
// process that reuses the pid is not mistaken for the holder.
func (h Holder) Stamped() Holder {
	h.Started = processStart(h.PID)
	return h
}

// Gone reports whether h ran on this host and its process is gone, or its
// pid now belongs to another process. A holder on another host is never
// known to be gone.
func (h Holder) Gone() bool {
	host, _ := os.Hostname()
	if h.Host != host || h.PID <= 0 {
		return false
	}
	if err := syscall.Kill(h.PID, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	return h.Started != 0 && processStart(h.PID) != h.Started
}

// processStart reads a process's start time in clock ticks from /proc, 0 when unknown.
func processStart(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}
