package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

// canaryView is where a running canary or shadow stands: its step, the
// shares, and each metric of the new version against its limit, read live.
type canaryView struct {
	Strategy string           `json:"strategy"`
	Step     int              `json:"step"` // 1-based canary step
	Steps    int              `json:"steps,omitempty"`
	Weights  map[string]int   `json:"weights"` // share of requests by colour; for shadow, the mirrored share of the new one
	Paused   bool             `json:"paused,omitempty"`
	Held     string           `json:"held,omitempty"`
	Window   time.Duration    `json:"windowNs"`
	Verdict  *rollout.Verdict `json:"verdict,omitempty"`
	Error    string           `json:"error,omitempty"` // the figures could not be read
}

// canaryStatus reads the figures of the pending canary or shadow j over the
// time since its step began; nil when j is not one.
func canaryStatus(ctx context.Context, p rollout.Platform, settings rollout.Config, j *rollout.Journal, now time.Time) *canaryView {
	if j == nil || j.Progress == nil || j.From == nil {
		return nil
	}
	v := &canaryView{Strategy: j.Strategy, Step: j.Progress.Index + 1, Steps: j.Progress.Steps, Paused: j.Progress.Paused, Held: j.Progress.Held}
	if j.Strategy == rollout.StrategyShadow {
		v.Step, v.Steps = 0, 0
		v.Weights = map[string]int{string(j.From.Color): 100, string(j.To.Color) + " (mirrored)": j.Progress.Weight}
	} else {
		v.Weights = map[string]int{string(j.From.Color): 100 - j.Progress.Weight, string(j.To.Color): j.Progress.Weight}
	}
	sp, ok := p.(rollout.Splitter)
	if !ok {
		v.Error = "this target cannot measure each version"
		return v
	}
	v.Window = max(now.Sub(j.Updated), 10*time.Second).Round(time.Second)
	gs, err := sp.GroupStats(ctx, v.Window)
	if err != nil {
		v.Error = err.Error()
		return v
	}
	var serving, cand rollout.GroupStats
	for _, g := range gs {
		switch {
		case g.Color == j.From.Color && !g.Shadow:
			serving = g
		case g.Color == j.To.Color && g.Shadow == (j.Strategy == rollout.StrategyShadow):
			cand = g
		}
	}
	serving.Color, cand.Color = j.From.Color, j.To.Color
	verdict := rollout.Judge(settings.Canary.Analysis, serving, cand)
	v.Verdict = &verdict
	return v
}

func printCanary(w io.Writer, v *canaryView) {
	if v == nil {
		return
	}
	state := "running"
	switch {
	case v.Held != "":
		state = "holding (" + v.Held + "): `aideploy rollout promote`, `abort` or `resume`"
	case v.Paused:
		state = "paused: `aideploy rollout resume` carries on"
	}
	if v.Strategy == rollout.StrategyShadow {
		fmt.Fprintf(w, "\nshadow: %s, %s\n", weightsText(v.Weights), state)
	} else {
		fmt.Fprintf(w, "\ncanary step %d/%d: %s, %s\n", v.Step, v.Steps, weightsText(v.Weights), state)
	}
	if v.Error != "" {
		fmt.Fprintf(w, "figures: %s\n", v.Error)
		return
	}
	vd := v.Verdict
	fmt.Fprintf(w, "over the last %s: %s\n", v.Window, vd.Reason)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "METRIC\t%s\t%s\tLIMIT\tOK\n", vd.Candidate.Color, vd.Serving.Color)
	for _, c := range vd.Checks {
		ok := yesNo(c.OK)
		if c.Skipped != "" {
			ok = "n/a: " + c.Skipped
		}
		if c.Noise {
			ok = "within noise"
		}
		op := "≥"
		if c.Higher {
			op = "≤"
		}
		value, base := metricText(c.Value, c.Unit), metricText(c.Baseline, c.Unit)
		limit := fmt.Sprintf("%s %s (%s)", op, metricText(c.Limit, c.Unit), c.Rule)
		if c.Skipped != "" {
			// A version reported no such figure: there is no limit to show,
			// and the missing side's zero is not a measurement.
			limit = "-"
			if c.Value == 0 {
				value = "-"
			}
			if c.Baseline == 0 {
				base = "-"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Metric, value, base, limit, ok)
	}
	_ = tw.Flush()
}

// weightsText lists the shares, largest first: "blue 75%, green 25%".
func weightsText(ws map[string]int) string {
	keys := make([]string, 0, len(ws))
	for k := range ws {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if ws[keys[a]] != ws[keys[b]] {
			return ws[keys[a]] > ws[keys[b]]
		}
		return keys[a] < keys[b]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d%%", k, ws[k])
	}
	return strings.Join(parts, ", ")
}

func metricText(v float64, unit string) string {
	switch unit {
	case "s":
		return time.Duration(v * float64(time.Second)).Round(time.Millisecond).String()
	case "%":
		return fmt.Sprintf("%.1f%%", v*100)
	}
	return fmt.Sprintf("%.1f %s", v, unit)
}
