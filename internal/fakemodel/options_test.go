package fakemodel

import (
	"errors"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    func(o *Options) // applied to the defaults
		wantErr string
	}{
		{name: "defaults", want: func(*Options) {}},
		{name: "env", env: map[string]string{
			"FAKEMODEL_LISTEN": "unix:///tmp/m.sock", "FAKEMODEL_TOKEN_DELAY": "50ms", "FAKEMODEL_FIRST_TOKEN_DELAY": "1s",
			"FAKEMODEL_STARTUP_DELAY": "2s", "FAKEMODEL_FAILURE_RATE": "0.1", "FAKEMODEL_FAIL_AFTER": "10s",
			"FAKEMODEL_CRASH_AFTER": "3s", "FAKEMODEL_HANG": "true", "FAKEMODEL_HEALTH_FAIL": "1",
			"FAKEMODEL_VERSION": "v2", "FAKEMODEL_MODEL": "llama", "FAKEMODEL_TOKENS": "7",
			"FAKEMODEL_EMBEDDING_DIM": "4", "FAKEMODEL_SHUTDOWN_TIMEOUT": "5s",
		}, want: func(o *Options) {
			o.Listen, o.TokenDelay, o.FirstTokenDelay = "unix:///tmp/m.sock", 50*time.Millisecond, time.Second
			o.StartupDelay, o.FailureRate, o.FailAfter, o.CrashAfter = 2*time.Second, 0.1, 10*time.Second, 3*time.Second
			o.Hang, o.HealthFail, o.Version, o.Model, o.Tokens = true, true, "v2", "llama", 7
			o.EmbeddingDim, o.ShutdownTimeout = 4, 5*time.Second
		}},
		{name: "flags override env", args: []string{"-version", "v3", "-token-delay=5ms", "-healthcheck", "http://x/health"},
			env:  map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "1s"},
			want: func(o *Options) { o.Version, o.TokenDelay, o.HealthCheck = "v3", 5*time.Millisecond, "http://x/health" }},
		{name: "bad env value", env: map[string]string{"FAKEMODEL_TOKEN_DELAY": "soon"}, wantErr: "FAKEMODEL_TOKEN_DELAY"},
		{name: "unknown flag", args: []string{"-speed", "1"}, wantErr: "flag provided but not defined"},
		{name: "extra argument", args: []string{"serve"}, wantErr: `unexpected argument "serve"`},
		{name: "invalid values all reported", args: []string{"-failure-rate", "1.5", "-tokens", "0", "-token-delay", "-1s"},
			wantErr: "tokens: (0) must be at least 1\nfailureRate: (1.5) must be between 0 and 1\ntokenDelay: (-1s) must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFlags(tt.args, func(k string) string { return tt.env[k] }, io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrUsage) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				if ExitCode(err) != 2 {
					t.Errorf("exit code %d, want 2", ExitCode(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultOptions()
			tt.want(&want)
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseFlagsHelp(t *testing.T) {
	t.Parallel()
	var usage strings.Builder
	_, err := ParseFlags([]string{"-h"}, func(string) string { return "" }, &usage)
	if !errors.Is(err, flag.ErrHelp) || ExitCode(err) != 0 {
		t.Fatalf("error %v (exit %d), want flag.ErrHelp and exit 0", err, ExitCode(err))
	}
	if !strings.Contains(usage.String(), "-first-token-delay") {
		t.Errorf("usage does not list the knobs:\n%s", usage.String())
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Parallel()
	o, err := OptionsFromEnv(func(k string) string {
		return map[string]string{"FAKEMODEL_VERSION": "blue-2", "FAKEMODEL_STARTUP_DELAY": "3s"}[k]
	})
	if err != nil || o.Version != "blue-2" || o.StartupDelay != 3*time.Second || o.Listen != ":8000" {
		t.Fatalf("OptionsFromEnv = %+v, %v; want version blue-2, startup 3s, listen :8000", o, err)
	}
}
