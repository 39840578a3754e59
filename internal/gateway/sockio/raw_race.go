//go:build linux && race

package sockio

import (
	"errors"
	"syscall"
)

// Under the race detector, reads and writes go through the syscall package,
// whose annotations tell the detector that a socket write happens before the
// read that sees its bytes, as they do for net.Conn.
func sysRead(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Read(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func sysWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	n, err := syscall.Write(int(fd), p)
	return max(n, 0), errnoOf(err)
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if err != nil && !errors.As(err, &e) {
		return syscall.EIO
	}
	return e
}
