package gateway

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
)

// A token file rewritten (a rotated Kubernetes secret, say) takes effect on
// SIGHUP: the new token opens the admin API and the old one no longer does.
func TestIntegrationSIGHUPRotatesTheAdminToken(t *testing.T) {
	_, up := fake(t, nil)
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte("old-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(up)
	cfg.AdminTokenFile = file
	g := runGateway(t, cfg, Options{Reload: func() (Config, error) { return cfg, nil }})
	ctx := context.Background()
	status := func(token string) int {
		_, err := (&adminapi.Client{BaseURL: g.admin, Token: token}).Pools(ctx)
		var se *adminapi.StatusError
		if errors.As(err, &se) {
			return se.Code
		}
		if err != nil {
			t.Fatal(err)
		}
		return 200
	}
	if got := status("old-token"); got != 200 {
		t.Fatalf("the file's token: %d", got)
	}
	if err := os.WriteFile(file, []byte("new-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := status("new-token"); got != 401 {
		t.Fatalf("the new token works before the reload: %d", got)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for status("new-token") != 200 {
		if time.Now().After(deadline) {
			t.Fatal("the rewritten token file was not read on SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := status("old-token"); got != 401 {
		t.Fatalf("the old token still works after the rotation: %d", got)
	}
}
