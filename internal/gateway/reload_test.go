package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/units"
)

// A reload must not undo a rollout's switch: the admin API's targets stay
// until a restart; pools the admin API never touched follow the file.
func TestReloadKeepsAdminTargets(t *testing.T) {
	blue, blueURL := fake(t, nil)
	green, greenURL := fake(t, nil)
	other, otherURL := fake(t, nil)
	cfg := testConfig(blueURL)
	srv, gw := startGateway(t, cfg, false)

	pool := srv.Gateway().Pools()["default"]
	if _, err := pool.Replace(context.Background(), adminapi.ReplaceTargets{
		Targets: []adminapi.Target{{URL: greenURL, Weight: 1}}, HealthTimeout: units.Duration(5 * time.Second),
	}); err != nil {
		t.Fatal(err)
	}
	// The file still lists blue, as it does after a real rollout.
	if err := srv.Reload(testConfig(blueURL)); err != nil {
		t.Fatal(err)
	}
	b0, g0 := blue.Stats().Requests, green.Stats().Requests
	for i := range 5 {
		if resp, _ := post(t, gw+"/v1/chat/completions", uniqueBody(i)); resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if blue.Stats().Requests != b0 || green.Stats().Requests != g0+5 {
		t.Fatalf("after the reload blue got %d and green %d of 5: the reload undid the switch",
			blue.Stats().Requests-b0, green.Stats().Requests-g0)
	}
	if !srv.Gateway().Pools()["default"].AdminChanged() {
		t.Error("the adopted pool forgot it was set through the admin API: a second reload would undo the switch")
	}

	// A fresh server whose pools the admin API never changed follows the file.
	srv2, gw2 := startGateway(t, testConfig(blueURL), false)
	if err := srv2.Reload(testConfig(otherURL)); err != nil {
		t.Fatal(err)
	}
	o0 := other.Stats().Requests
	post(t, gw2+"/v1/chat/completions", uniqueBody(99))
	if other.Stats().Requests != o0+1 {
		t.Error("a reload did not apply the file's targets to a pool the admin API never changed")
	}
}
