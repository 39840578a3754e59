package render

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
)

// TestIntegrationOllamaServesTheListedMetrics scrapes a real Ollama (the
// preset's engine, built by hack/ollama-build.sh) after it has answered, and
// checks that testdata/metrics/ollama.txt lists exactly what it serves on
// /metrics: none today, as a 404. The monitoring tests check the Ollama
// preset's queries on the model's job against that list, so a dashboard
// panel or alert reading an Ollama metric that does not exist fails there,
// and an Ollama that starts serving metrics fails here until they are listed.
func TestIntegrationOllamaServesTheListedMetrics(t *testing.T) {
	t.Parallel()
	s := ollamatest.Start(t, ollamatest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A loaded model and an answer, so that metrics registered on first use exist.
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: time.Minute}
	resp, err := c.Post(s.URL+"/v1/chat/completions", "application/json", strings.NewReader(
		`{"model":"`+ollamatest.Model+`","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a chat completion: %s", resp.Status)
	}

	resp, err = c.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var scraped []string
	switch resp.StatusCode {
	case http.StatusNotFound:
		// No metrics endpoint: the engine serves none.
	case http.StatusOK:
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("Ollama's /metrics answered 200 but does not parse as Prometheus text: %v\n%.300s", err, body)
		}
		for name := range fams {
			scraped = append(scraped, name)
		}
	default:
		t.Fatalf("Ollama's /metrics: %s, want 404 (none) or 200 with metrics: %.300s", resp.Status, body)
	}
	listed := readMetricList(t, "ollama")
	for _, name := range scraped {
		if !listed[name] {
			t.Errorf("Ollama serves %s, which testdata/metrics/ollama.txt does not list; add it", name)
		}
	}
	for name := range listed {
		if !slices.Contains(scraped, name) {
			t.Errorf("testdata/metrics/ollama.txt lists %s, which Ollama does not serve (/metrics: %s)", name, resp.Status)
		}
	}
}
