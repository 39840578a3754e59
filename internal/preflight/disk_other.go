//go:build !unix

package preflight

import "errors"

var errAddrInUse = errors.New("address in use")

func freeBytes(string) (uint64, error) {
	return 0, errors.New("free space is only measured on unix systems")
}
