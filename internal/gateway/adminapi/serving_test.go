package adminapi

import "testing"

// The serving version's TTFT is that of the groups clients are sent to: not
// the fallback group with no share, not a shadow, not a draining target's.
func TestServingTTFT(t *testing.T) {
	t.Parallel()
	st := Stats{ByGroup: []GroupStats{
		{Group: "green", TTFTP95Seconds: 0.04},
		{Group: "blue", TTFTP95Seconds: 0.9}, // fallback: answers only what green could not
		{Group: "blue", Shadow: true, TTFTP95Seconds: 3},
		{Group: "", TTFTP95Seconds: 0.2},
	}}
	for _, tt := range []struct {
		name string
		pool Pool
		want float64
	}{
		{"split with a fallback", Pool{
			Targets: []Target{{URL: "g", Group: "green"}, {URL: "b", Group: "blue"}},
			Split:   &Split{Percent: map[string]int{"green": 100}, Fallback: "blue"},
		}, 0.04},
		{"canary split", Pool{
			Targets: []Target{{URL: "g", Group: "green"}, {URL: "b", Group: "blue"}},
			Split:   &Split{Percent: map[string]int{"green": 10, "blue": 90}},
		}, 0.9},
		{"no split, one group draining", Pool{
			Targets: []Target{{URL: "g", Group: "green"}, {URL: "b", Group: "blue", Draining: true}},
		}, 0.04},
		{"targets without groups", Pool{Targets: []Target{{URL: "a"}}}, 0.2},
		{"a group with no answers yet", Pool{Targets: []Target{{URL: "x", Group: "red"}}}, 0},
	} {
		if got := st.TTFTP95Seconds(tt.pool.ServingGroups()); got != tt.want {
			t.Errorf("%s: TTFT p95 %gs, want %gs", tt.name, got, tt.want)
		}
	}
}
