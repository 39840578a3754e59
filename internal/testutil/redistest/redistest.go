package redistest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Binary is where Debian's redis-server package installs the server.
const Binary = "/usr/bin/redis-server"

// Server is a redis-server process owned by one test.
type Server struct {
	Addr string // host:port on loopback

	t    testing.TB
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start runs a fresh redis-server and returns its address and a stop function (also
// registered with t.Cleanup, so calling it is optional).
func Start(t testing.TB) (addr string, stop func()) {
	t.Helper()
	s := New(t)
	return s.Addr, s.Stop
}

// New runs a fresh redis-server, stopped in t.Cleanup. Under -short it skips the test;
// without the binary it fails the test with how to install it.
func New(t testing.TB) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a real redis-server; skipped under -short")
	}
	if _, err := exec.LookPath(Binary); err != nil {
		t.Fatalf("redis-server is missing at %s; install it with: apt-get install -y redis-server", Binary)
	}
	s := &Server{t: t}
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			t.Fatalf("finding a free loopback port: %v", err)
		}
		s.port, s.Addr = port, net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if lastErr = s.launch(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("starting redis-server: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) launch() error {
	cmd := exec.Command(Binary,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no",
		"--protected-mode", "no", "--loglevel", "warning", "--dir", s.t.TempDir())
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if ping(s.Addr) == nil {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server did not answer PING on %s within 10s: %s", s.Addr, out.String())
		}
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING answer %q", line)
	}
	return nil
}

// Kill stops the server at once with SIGKILL, as a crash would, and waits for it to exit.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the server again on the same address after Kill (data is lost).
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := s.launch()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("restarting redis-server on %s: %v", s.Addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server if it runs; it is safe to call more than once.
func (s *Server) Stop() { s.Kill() }

// Hung listens on loopback, accepts connections and never answers, like a
// Redis stuck in a slow command; it returns the address. Everything closes
// when the test ends.
func Hung(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}
