package fakemodel

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// ErrCrash is returned by Serve when the crash-after knob fires; the binary exits 1 on it.
var ErrCrash = errors.New("crashing on purpose (crash-after)")

// Listen opens a TCP address ("127.0.0.1:0", ":8000") or a unix socket ("unix:///path.sock"),
// removing a stale socket file first.
func Listen(addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing stale socket %s: %w", path, err)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, fmt.Errorf("listening on %s: %w", addr, err)
		}
		return ln, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w; choose a free address with -listen", addr, err)
	}
	return ln, nil
}

// Serve answers on ln until ctx is done, then shuts down gracefully: requests in flight get
// up to opts.ShutdownTimeout to finish. It returns ErrCrash when crash-after fires.
func Serve(ctx context.Context, ln net.Listener, opts Options) error {
	h := NewHandler(opts)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	var crash <-chan time.Time
	if opts.CrashAfter > 0 {
		t := time.NewTimer(opts.CrashAfter)
		defer t.Stop()
		crash = t.C
	}
	select {
	case err := <-served:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-crash:
		_ = srv.Close()
		return ErrCrash
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutting down with requests still in flight after %s: %w", opts.ShutdownTimeout, err)
	}
	return nil
}

// HealthCheck GETs url and returns nil when it answers 2xx within ten seconds (or ctx's deadline).
func HealthCheck(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building health check for %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("checking health at %s: %w", url, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("checking health at %s: status %s", url, resp.Status)
	}
	return nil
}

// Main is the whole binary: it reads FAKEMODEL_* from getenv and flags from args, then either
// runs one health check (-healthcheck URL) or serves until ctx is done.
// It returns flag.ErrHelp for -h and ErrCrash when crash-after fires.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	opts, err := ParseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	if opts.HealthCheck != "" {
		return HealthCheck(ctx, opts.HealthCheck)
	}
	ln, err := Listen(opts.Listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "fakemodel %s (model %s) listening on %s\n", opts.Version, opts.Model, ln.Addr())
	return Serve(ctx, ln, opts)
}

// ExitCode maps Main's error to the process exit status: 0 ok or -h, 2 bad usage, 1 otherwise.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		return 2
	}
	return 1
}
