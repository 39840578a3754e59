package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/iostreams"
)

func runGatewayKeyCmd(t *testing.T, stdin, output string, args ...string) (string, error) {
	t.Helper()
	return runCmd(t, newCmdGatewayKey, "", output, stdin, args...)
}

// The entry gateway key prints, pasted into aideploy.yaml, makes a gateway
// accept the key it printed, and only that key.
func TestGatewayKeyIsAcceptedByTheGateway(t *testing.T) {
	t.Parallel()
	out, err := runGatewayKeyCmd(t, "", "table", "team-a")
	if err != nil {
		t.Fatal(err)
	}
	key := ""
	for _, l := range strings.Split(out, "\n") {
		if s := strings.TrimSpace(l); strings.HasPrefix(s, keyPrefix) {
			key = s
		}
	}
	_, entry, ok := strings.Cut(out, "reload the gateway (SIGHUP):\n\n")
	if key == "" || !ok {
		t.Fatalf("no key or no entry in:\n%s", out)
	}
	up := httptest.NewServer(fakemodel.NewHandler(fakemodel.DefaultOptions()))
	defer up.Close()
	file := "apiVersion: aideploy.dev/v1\nname: demo\nimage: example/model:1.0\ngateway:\n  auth:\n    enabled: true\n    keys:\n" + entry +
		"  pools:\n    - name: default\n      targets:\n        - url: " + up.URL + "\n"
	path := filepath.Join(t.TempDir(), "aideploy.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	streams, _, _, _ := iostreams.Test()
	cfg, err := gatewayConfig(&gatewayServeOptions{f: factoryFor(streams, path)})
	if err != nil {
		t.Fatalf("the printed entry does not load: %v\n%s", err, file)
	}
	gw, err := gateway.New(cfg, gateway.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		key  string
		want int
	}{{key, http.StatusOK}, {key + "x", http.StatusUnauthorized}, {"", http.StatusUnauthorized}} {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
		if tc.key != "" {
			req.Header.Set("Authorization", "Bearer "+tc.key)
		}
		rec := httptest.NewRecorder()
		gw.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("key %q: status %d, want %d: %s", tc.key, rec.Code, tc.want, rec.Body)
		}
	}
}

func TestGatewayKeyJSON(t *testing.T) {
	t.Parallel()
	a, err := runGatewayKeyCmd(t, "", "json", "team-a")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := runGatewayKeyCmd(t, "", "json", "team-a")
	var k1, k2 gatewayKey
	if err := json.Unmarshal([]byte(a), &k1); err != nil {
		t.Fatalf("%v\n%s", err, a)
	}
	_ = json.Unmarshal([]byte(b), &k2)
	sum := sha256.Sum256([]byte(k1.Key))
	if k1.Name != "team-a" || !strings.HasPrefix(k1.Key, keyPrefix) || len(k1.Key) != len(keyPrefix)+32 || k1.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("got %+v", k1)
	}
	if k1.Key == k2.Key {
		t.Fatalf("two runs made the same key %q", k1.Key)
	}
}

func TestGatewayKeyFromStdin(t *testing.T) {
	t.Parallel()
	out, err := runGatewayKeyCmd(t, "sk-existing\n", "json", "team-b", "--stdin")
	if err != nil {
		t.Fatal(err)
	}
	var k gatewayKey
	if err := json.Unmarshal([]byte(out), &k); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte("sk-existing"))
	if k.Key != "" || k.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("got %+v, want no key and the hash of sk-existing", k)
	}
	for _, args := range [][]string{nil, {"a", "b"}, {" "}} {
		_, err := runGatewayKeyCmd(t, "", "table", args...)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("args %q: got %v, want a usage error", args, err)
		}
	}
	for _, stdin := range []string{"", "\n", " sk-padded\n"} {
		_, err := runGatewayKeyCmd(t, stdin, "table", "team-b", "--stdin")
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Errorf("stdin %q: got %v, want a usage error", stdin, err)
		}
	}
}

func TestYAMLStringKeepsTheName(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"team-a", "yes", "007", "a: b", "#x", "-x", "on", "null", "x y", `q"uote`} {
		var v map[string]any
		if err := yaml.Unmarshal([]byte("name: "+yamlString(name)), &v); err != nil {
			t.Fatalf("%q printed as %s: %v", name, yamlString(name), err)
		}
		if got, ok := v["name"].(string); !ok || got != name {
			t.Errorf("%q printed as %s reads back as %#v", name, yamlString(name), v["name"])
		}
	}
}
