package upstream

import (
	"net/url"
	"testing"
)

func TestURLFor(t *testing.T) {
	for _, tc := range []struct {
		target string
		in     []string // request URIs, in order
		want   []string
	}{
		{"http://127.0.0.1:8000",
			[]string{"/v1/chat/completions", "/v1/chat/completions?x=1", "/v1/embeddings", "/v1/embeddings", "/a%2Fb"},
			[]string{"http://127.0.0.1:8000/v1/chat/completions", "http://127.0.0.1:8000/v1/chat/completions?x=1",
				"http://127.0.0.1:8000/v1/embeddings", "http://127.0.0.1:8000/v1/embeddings", "http://127.0.0.1:8000/a%2Fb"}},
		{"http://model:8000/prefix",
			[]string{"/v1/models", "/v1/models", "/v1/model", "/prefix/v1"},
			[]string{"http://model:8000/prefix/v1/models", "http://model:8000/prefix/v1/models",
				"http://model:8000/prefix/v1/model", "http://model:8000/prefix/prefix/v1"}},
		{"unix:///run/model.sock",
			[]string{"/health", "/v1/completions"},
			[]string{"http://unix/health", "http://unix/v1/completions"}},
	} {
		tg, err := newTarget(TargetConfig{URL: tc.target}, Timeouts{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var prev *url.URL
		for i, uri := range tc.in {
			in, err := url.ParseRequestURI(uri)
			if err != nil {
				t.Fatal(err)
			}
			got := tg.URLFor(in)
			if got.String() != tc.want[i] {
				t.Errorf("%s, %s: %s, want %s", tc.target, uri, got, tc.want[i])
			}
			if same := i > 0 && tc.in[i-1] == uri; same != (got == prev) {
				t.Errorf("%s, %s: reused the last URL: %v, want %v", tc.target, uri, got == prev, same)
			}
			prev = got
		}
	}
}
