//go:build !unix

package gateway

// openFileLimit is unknown outside unix.
func openFileLimit() uint64 { return 0 }
