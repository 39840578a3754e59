package compose

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

// TestCheckFindsTheGatewayFirst: a rollout whose gateway is not running, has
// no admin token or refuses ours fails at the check step, before an image is
// pulled or a container made (this platform has no Docker client: reaching
// past the gateway check would panic).
func TestCheckFindsTheGatewayFirst(t *testing.T) {
	t.Parallel()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneURL := "http://" + gone.Addr().String()
	gone.Close() // nothing listens there now
	answer := func(code int, msg string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(`{"error":"` + msg + `"}`))
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	tests := []struct {
		name, url, token string
		want             []string
	}{
		{"no gateway", goneURL, "t", []string{"checking the gateway before creating anything", "aideploy gateway serve", "AIDEPLOY_GATEWAY_ADMIN"}},
		{"admin API off", answer(http.StatusForbidden, "the admin API is off"), "", []string{"cannot switch traffic", adminapi.TokenEnv}},
		{"wrong token", answer(http.StatusUnauthorized, "missing or wrong admin token"), "x", []string{"refused the admin token", adminapi.TokenEnv}},
		{"no such pool", answer(http.StatusNotFound, `no pool \"default\"`), "t", []string{`has no pool "default"`, "--pool"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := New(nil, Options{Gateway: &adminapi.Client{BaseURL: tt.url, Token: tt.token}})
			err := p.Check(context.Background(), rollout.Deployment{Image: "m:v2", Revision: 2, Replicas: 1}, nil)
			if err == nil {
				t.Fatal("Check passed with a gateway that cannot switch")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
