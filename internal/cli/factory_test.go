package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/iostreams"
)

// --output json turns the log lines of long-running commands (gateway serve,
// rollout) into JSON objects as well; the default stays readable text.
func TestLoggerFollowsOutputFormat(t *testing.T) {
	for _, format := range []string{"table", "json"} {
		s, _, _, errOut := iostreams.Test()
		f := NewFactory(s)
		f.Output = format
		f.Logger().Info("gateway serving", "listen", "127.0.0.1:8080")
		line := strings.TrimSpace(errOut.String())
		var m map[string]any
		isJSON := json.Unmarshal([]byte(line), &m) == nil
		if isJSON != (format == "json") || !strings.Contains(line, "gateway serving") {
			t.Errorf("--output %s logged %q", format, line)
		}
		if isJSON && m["listen"] != "127.0.0.1:8080" {
			t.Errorf("JSON log line lost its attribute: %q", line)
		}
	}
}
