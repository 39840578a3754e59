package gateway

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// lockedBuffer is a log sink that Run's goroutines and the test share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStartLineSaysWhatIsOn: the operator sees at start whether rollouts
// can drive the gateway and which protections are on.
func TestStartLineSaysWhatIsOn(t *testing.T) {
	_, up := fake(t, nil)
	_, up2 := fake(t, nil)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AIDEPLOY_ADMIN_TOKEN", "")
	keys := []Key{{Name: "a", SHA256: strings.Repeat("ab", 32)}, {Name: "b", SHA256: strings.Repeat("cd", 32)}}
	tests := []struct {
		name  string
		setup func(*Config)
		want  []string
	}{
		{"embedded defaults", func(*Config) {}, []string{
			`admin_api="off (rollouts cannot switch traffic; set gateway.adminTokenFile or AIDEPLOY_ADMIN_TOKEN)"`,
			`pools="default (1 target)"`, "auth=off", `cache="L1 256Mi, ttl 1h"`, "limits=off"}},
		{"everything on", func(c *Config) {
			c.AdminTokenFile = tokenFile
			c.Auth = Auth{Enabled: true, Keys: keys}
			c.Limits.Enabled = true
			c.Pools[0].Targets = append(c.Pools[0].Targets, upstream.TargetConfig{URL: up2})
		}, []string{"admin_api=on", `pools="default (2 targets)"`, `auth="on, 2 keys"`, "limits=local"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(up)
			cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
			tt.setup(&cfg)
			var logs lockedBuffer
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)), Options{Started: func(string, string) { cancel() }})
			}()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			i := strings.Index(logs.String(), `msg="gateway serving"`)
			if i < 0 {
				t.Fatalf("no start line in:\n%s", logs.String())
			}
			line, _, _ := strings.Cut(logs.String()[i:], "\n")
			for _, w := range tt.want {
				if !strings.Contains(line, w) {
					t.Errorf("the start line lacks %s:\n%s", w, line)
				}
			}
		})
	}
}
