package fakemodel

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve runs Serve on a loopback port and returns its base URL and its result channel.
func serve(t *testing.T, ctx context.Context, o Options) (string, <-chan error) {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, o) }()
	return "http://" + ln.Addr().String(), done
}

func wait(t *testing.T, done <-chan error, limit time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Serve did not return within %s", limit)
		return nil
	}
}

func TestServeGracefulShutdownFinishesStream(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Tokens = 10
	o.TokenDelay = 20 * time.Millisecond
	ctx, stop := context.WithCancel(t.Context())
	url, done := serve(t, ctx, o)
	resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{"prompt":"x","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	stop() // SIGTERM while the stream is in flight
	evs := readEvents(t, br, time.Now())
	if len(evs) == 0 || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("stream cut by shutdown: %v", evs)
	}
	if err := wait(t, done, 2*time.Second); err != nil {
		t.Fatalf("Serve = %v, want nil after a clean shutdown", err)
	}
}

func TestServeShutdownIsBounded(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.Hang = true
	o.ShutdownTimeout = 100 * time.Millisecond
	ctx, stop := context.WithCancel(t.Context())
	url, done := serve(t, ctx, o)
	go func() {
		resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(`{}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	stop()
	if err := wait(t, done, 2*time.Second); err == nil || !strings.Contains(err.Error(), "in flight") {
		t.Fatalf("Serve = %v, want a bounded shutdown error", err)
	}
}

func TestServeCrashAfter(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.CrashAfter = 50 * time.Millisecond
	_, done := serve(t, t.Context(), o)
	if err := wait(t, done, 2*time.Second); !errors.Is(err, ErrCrash) || ExitCode(err) != 1 {
		t.Fatalf("Serve = %v (exit %d), want ErrCrash and exit 1", err, ExitCode(err))
	}
}

func TestServeUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "m.sock")
	ln, err := Listen("unix://" + sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, testOptions()) }()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Get("http://model/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Model-Version") != "v9" {
		t.Errorf("health over unix socket: %d version %q", resp.StatusCode, resp.Header.Get("X-Model-Version"))
	}
	stop()
	if err := wait(t, done, 2*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestHealthCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    func(*Options)
		wantErr bool
	}{
		{"healthy", func(*Options) {}, false},
		{"unhealthy", func(o *Options) { o.HealthFail = true }, true},
		{"loading", func(o *Options) { o.StartupDelay = time.Hour }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			o := testOptions()
			tt.opts(&o)
			srv := httptest.NewServer(NewHandler(o))
			defer srv.Close()
			err := Main(t.Context(), []string{"-healthcheck", srv.URL + "/health"}, func(string) string { return "" }, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("health check = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	if err := HealthCheck(t.Context(), "http://127.0.0.1:1/health"); err == nil {
		t.Error("health check of a closed port succeeded")
	}
}
