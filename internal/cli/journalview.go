package cli

import (
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// journalView is a journal as status and history print it for machines: the
// warm-up's time to first token as milliseconds, the unit in the key's name,
// instead of the raw nanoseconds the journal stores.
type journalView struct {
	rollout.Journal
	// RawTTFT is never set: as the shallower field named "ttft" it hides
	// the journal's own from encoding/json, and omitempty leaves it out.
	RawTTFT time.Duration `json:"ttft,omitempty"`
	TTFTMs  *float64      `json:"ttftMs,omitempty"`
}

func newJournalView(j rollout.Journal) journalView {
	v := journalView{Journal: j}
	if j.TTFT > 0 {
		ms := float64(j.TTFT.Microseconds()) / 1000
		v.TTFTMs = &ms
	}
	return v
}

// humanDuration rounds d for a person: 16ms, 1.2s, 3m4s.
func humanDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
