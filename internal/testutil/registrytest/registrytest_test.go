package registrytest_test

import (
	"net/http"
	"testing"

	"github.com/aideploy/aideploy/internal/testutil/registrytest"
)

func TestIntegrationRegistryServesTheAPI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		opts       registrytest.Options
		user, pass string
		want       int
	}{
		{"open", registrytest.Options{}, "", "", http.StatusOK},
		{"auth, none sent", registrytest.Options{Users: map[string]string{"ci": "s3cret"}}, "", "", http.StatusUnauthorized},
		{"auth, wrong password", registrytest.Options{Users: map[string]string{"ci": "s3cret"}}, "ci", "nope", http.StatusUnauthorized},
		{"auth, right password", registrytest.Options{Users: map[string]string{"ci": "s3cret"}}, "ci", "s3cret", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := registrytest.Start(t, tt.opts)
			req, _ := http.NewRequest(http.MethodGet, "http://"+r.Host+"/v2/", nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("GET /v2/ = %d, want %d", resp.StatusCode, tt.want)
			}
			r.Stop()
			if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
				t.Errorf("registry still answers on %s after Stop", r.Host)
			}
		})
	}
}
