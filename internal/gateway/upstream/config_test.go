package upstream

import (
	"strings"
	"testing"
)

// A target URL that is refused says what to write instead.
func TestParseTargetURLSaysWhatToWrite(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"127.0.0.1:9000", `"127.0.0.1:9000" has no scheme; use http://127.0.0.1:9000`},
		{"model:8000", `"model:8000" has no scheme; use http://model:8000`},
		{"/run/model.sock", `"/run/model.sock" has no scheme; use unix:///run/model.sock for a socket`},
		{"http://", `"http://" has no host; use http://host:port`},
		{"unix:relative.sock", `"unix:relative.sock" has no socket path; use unix:///path/to.sock`},
		{"https://", `"https://" has no host; use https://host:port`},
		{"ftp://x", `"ftp://x": scheme must be http, https or unix`},
	} {
		_, err := ParseTargetURL(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTargetURL(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
	for _, ok := range []string{"http://127.0.0.1:9000", "http://model:8000/v1", "https://model:443", "unix:///run/model.sock"} {
		if _, err := ParseTargetURL(ok); err != nil {
			t.Errorf("ParseTargetURL(%q) = %v, want it accepted", ok, err)
		}
	}
}
