package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// TestJournalViewJSONUnits: machines read the warm-up's time to first token
// as milliseconds with the unit in the key, never raw nanoseconds.
func TestJournalViewJSONUnits(t *testing.T) {
	t.Parallel()
	j := rollout.Journal{ID: "r2", Op: rollout.OpRollout, TTFT: 16*time.Millisecond + 400*time.Microsecond}
	b, err := json.Marshal(newJournalView(j))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["ttft"]; ok {
		t.Errorf("raw ttft still printed: %s", b)
	}
	if m["ttftMs"] != 16.4 || m["id"] != "r2" {
		t.Errorf("ttftMs = %v, id = %v in %s; want 16.4 and the journal's own fields", m["ttftMs"], m["id"], b)
	}
}

// TestHistoryAndStatusReadAsWhatTheyAre: history shows the time to first
// token in human units and status names a kept revision for what it is.
func TestHistoryAndStatusReadAsWhatTheyAre(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	js := []rollout.Journal{{Op: rollout.OpRollout, To: rollout.Deployment{Color: "green", Revision: 2, Image: "m:v2"},
		Status: rollout.StatusSucceeded, Step: rollout.StepRetire, TTFT: 16*time.Millisecond + 300*time.Microsecond}}
	if err := printHistory(&buf, js); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "TTFT") || !strings.Contains(buf.String(), " 16ms ") {
		t.Errorf("history:\n%s", buf.String())
	}
	buf.Reset()
	v := statusView{Service: "chat", Revisions: []revisionView{{Instance: rollout.Instance{Deployment: rollout.Deployment{Revision: 1, Color: "blue", Image: "m:v1"}, Total: 2}, State: "kept"}}}
	if err := printStatus(&buf, v); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "0/2 running  paused, kept for rollback") {
		t.Errorf("status:\n%s", buf.String())
	}
}
