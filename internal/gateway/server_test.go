package gateway

import (
	"net"
	"strings"
	"testing"
)

// A listener that fails says why: an address in use points at another
// gateway, anything else at the address itself.
func TestListenHintNamesTheCause(t *testing.T) {
	t.Parallel()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	_, inUse := net.Listen("tcp", held.Addr().String())
	if h := listenHint(inUse, "--listen"); !strings.Contains(h, "another gateway") || !strings.Contains(h, "--listen") {
		t.Errorf("address in use (%v): hint %q", inUse, h)
	}
	_, badHost := net.Listen("tcp", "192.0.2.1:8080") // TEST-NET-1: not an address of this machine
	if h := listenHint(badHost, "--admin-listen"); strings.Contains(h, "another gateway") || !strings.Contains(h, "--admin-listen") {
		t.Errorf("address not here (%v): hint %q", badHost, h)
	}
}
