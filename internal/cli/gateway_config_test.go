package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/iostreams"
)

// runCmd runs the command newCmd builds, on a factory reading path (""
// keeps the default) with --output output and stdin as standard input, and
// returns what it printed.
func runCmd[O any](t *testing.T, newCmd func(*Factory, func(context.Context, O) error) *cobra.Command, path, output, stdin string, args ...string) (string, error) {
	t.Helper()
	streams, in, out, _ := iostreams.Test()
	in.WriteString(stdin)
	f := NewFactory(streams)
	if path != "" {
		f.ConfigPath = path
	}
	f.Output = output
	cmd := newCmd(f, nil)
	cmd.SetArgs(args)
	cmd.SetOut(out)
	cmd.SetErr(out)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

// runGatewayConfigCmd runs `gateway config` with args against the file at path.
func runGatewayConfigCmd(t *testing.T, path, output string, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, newCmdGatewayConfig, path, output, "", args...)
}

// The printed section, pasted into an aideploy.yaml, gives serve exactly
// the settings it was printed from: nothing is lost or renamed on the way.
func TestGatewayConfigRoundTrips(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "aideploy.yaml")
	head := "apiVersion: aideploy.dev/v1\nname: demo\nimage: example/model:1.0\n"
	file := head + `gateway:
  listen: 127.0.0.1:7000
  order: [limit, cache, upstream]
  auth:
    enabled: true
    keys:
      - name: acme
        sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
        limits: {requests: 10, window: 1m}
  cache:
    ttl: 10m
    routes:
      /v1/embeddings: {shared: true, ttl: 24h}
  limits:
    enabled: true
    default: {requests: 50, window: 1m, tokensPerMinute: 20000}
    routes:
      - {route: /v1/embeddings, requests: 500, window: 1m, algorithm: tokenbucket}
  pools:
    - name: default
      maxInflight: 8
      queue: {size: 16, timeout: 2s}
      targets:
        - url: http://127.0.0.1:8000
          weight: 3
    - name: embed
      targets:
        - url: unix:///run/embed.sock
  routes:
    - path: /v1/embeddings
      pool: embed
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	printed, err := runGatewayConfigCmd(t, path, "table", "--redis", "redis://127.0.0.1:6379/1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(printed, "gateway:\n") {
		t.Fatalf("the output is not a gateway: section:\n%s", printed)
	}
	back := filepath.Join(dir, "back.yaml")
	if err := os.WriteFile(back, []byte(head+printed), 0o600); err != nil {
		t.Fatal(err)
	}
	streams, _, _, _ := iostreams.Test()
	want, err := gatewayConfig(&gatewayServeOptions{f: factoryFor(streams, path), redis: "redis://127.0.0.1:6379/1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := gatewayConfig(&gatewayServeOptions{f: factoryFor(streams, back)})
	if err != nil {
		t.Fatalf("the printed settings do not load back: %v\n%s", err, printed)
	}
	if want = want.Effective(); !reflect.DeepEqual(got, want) {
		t.Fatalf("printed and loaded back:\n%+v\nwant\n%+v", got, want)
	}
	// With a Redis URL the limits are shared, whatever limits.backend says.
	if got.Limits.Backend != "redis" {
		t.Fatalf("limits.backend = %q with a redisURL, want redis", got.Limits.Backend)
	}
}

func factoryFor(streams *iostreams.IOStreams, path string) *Factory {
	f := NewFactory(streams)
	f.ConfigPath = path
	return f
}

func TestGatewayConfigJSONHidesTheRedisPassword(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	out, err := runGatewayConfigCmd(t, missing, "json", "--upstream", "http://127.0.0.1:8000", "--redis", "redis://:s3cret@127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, "s3cret") {
		t.Fatalf("the Redis password is printed:\n%s", out)
	}
	var v struct {
		Gateway struct {
			RedisURL string `json:"redisURL"`
			Cache    struct {
				TTL string `json:"ttl"`
			} `json:"cache"`
		} `json:"gateway"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("-o json is not JSON: %v\n%s", err, out)
	}
	if v.Gateway.RedisURL != "redis://:xxxxx@127.0.0.1:6379/0" || v.Gateway.Cache.TTL != "1h" {
		t.Fatalf("redisURL %q, cache.ttl %q; want the redacted URL and the default 1h", v.Gateway.RedisURL, v.Gateway.Cache.TTL)
	}
}

func TestGatewayConfigRefusesWhatServeRefuses(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.yaml")
	out, err := runGatewayConfigCmd(t, missing, "yaml", "--upstream", "http://127.0.0.1:8000", "--listen", "127.0.0.1:99999")
	var ue *UsageError
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "gateway.listen") {
		t.Fatalf("got %v, want a usage error naming gateway.listen", err)
	}
	if out != "" {
		t.Fatalf("printed settings it refuses:\n%s", out)
	}
}
