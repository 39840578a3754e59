package sockio_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/sockio"
)

// pair returns a wrapped client end and the plain server end of a connection.
func pair(t *testing.T, network string) (net.Conn, net.Conn) {
	t.Helper()
	addr := "127.0.0.1:0"
	if network == "unix" {
		addr = filepath.Join(t.TempDir(), "s.sock")
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial(network, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	w := sockio.Wrap(c)
	t.Cleanup(func() { w.Close(); s.Close() })
	return w, s
}

func TestWrapRoundTripsLargerThanSocketBuffers(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			c, s := pair(t, network)
			if _, ok := c.(*sockio.Conn); !ok {
				t.Fatalf("Wrap gave %T, want *sockio.Conn", c)
			}
			// 8 MiB is far past the kernel's socket buffers: Write must wait
			// for room on the poller and carry on where it stopped.
			want := bytes.Repeat([]byte("0123456789abcdef"), 512<<10)
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(want)
				if err == nil {
					err = c.(interface{ CloseWrite() error }).CloseWrite()
				}
				errc <- err
			}()
			got, err := io.ReadAll(s)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d identical ones", len(got), len(want))
			}
			// And back: reads that wait for data, then EOF.
			go func() { _, _ = s.Write(want); s.Close() }()
			got, err = io.ReadAll(c)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
		})
	}
}

func TestWrapKeepsDeadlinesAndErrors(t *testing.T) {
	c, s := pair(t, "tcp")
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v, want a timeout", err)
	}
	if !strings.HasPrefix(err.Error(), "read tcp ") {
		t.Errorf("error %q does not read like net.Conn's", err)
	}
	_ = c.SetReadDeadline(time.Time{})

	// A reset from the peer reads as net.Conn reports it.
	_ = s.(*net.TCPConn).SetLinger(0)
	s.Close()
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("read after a reset: %v", err)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after Close: %v, want net.ErrClosed", err)
	}
}

func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if got := sockio.Wrap(a); got != a {
		t.Fatalf("Wrap(net.Pipe) = %T, want the pipe itself", got)
	}
}

func TestWrapLeavesDatagramSocketsAlone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "d.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("unixgram", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := sockio.Wrap(c); got != c {
		t.Fatalf("Wrap(unixgram) = %T, want the conn itself", got)
	}
}

func TestWrapGivesTheRawConn(t *testing.T) {
	c, _ := pair(t, "tcp")
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fd uintptr
	if err := rc.Control(func(f uintptr) { fd = f }); err != nil || fd == 0 {
		t.Fatalf("Control: fd %d, err %v", fd, err)
	}
}
