//go:build unix

package preflight

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

var errAddrInUse = syscall.EADDRINUSE

// freeBytes is the space an unprivileged user may still write under path.
func freeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}
