package ollamatest_test

import (
	"bufio"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
)

// TestIntegrationOllamaEndpoints checks testdata/ollama-endpoints.txt, the
// list other tests and the presets rely on, against the real engine.
func TestIntegrationOllamaEndpoints(t *testing.T) {
	t.Parallel()
	srv := ollamatest.Start(t, ollamatest.Options{})
	f, err := os.Open("testdata/ollama-endpoints.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 4 || fields[0] != http.MethodGet {
			t.Fatalf("malformed line %q: want GET PATH STATUS TYPE", line)
		}
		want, err := strconv.Atoi(fields[2])
		if err != nil {
			t.Fatalf("malformed status in %q", line)
		}
		n++
		resp, err := http.Get(srv.URL + fields[1])
		if err != nil {
			t.Fatalf("GET %s: %v", fields[1], err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s = %d, the list says %d", fields[1], resp.StatusCode, want)
		}
		if ct := resp.Header.Get("Content-Type"); fields[3] != "-" && !strings.HasPrefix(ct, fields[3]) {
			t.Errorf("GET %s Content-Type %q, the list says %s", fields[1], ct, fields[3])
		}
	}
	if n == 0 {
		t.Fatal("testdata/ollama-endpoints.txt lists no endpoint")
	}
}
