package adminapi

// ServingGroups names the groups of pool that answer clients: with a split,
// those with a share; without one, those of its targets that are not
// draining. A shadow's group, or a split's fallback with no share, is not one.
func (p Pool) ServingGroups() map[string]bool {
	out := map[string]bool{}
	for _, t := range p.Targets {
		switch {
		case p.Split != nil && len(p.Split.Percent) > 0:
			if p.Split.Percent[t.Group] > 0 {
				out[t.Group] = true
			}
		case !t.Draining:
			out[t.Group] = true
		}
	}
	return out
}

// TTFTP95Seconds is the highest p95 time to first token among the groups
// named, mirrored traffic left out; 0 when none of them answered.
func (s Stats) TTFTP95Seconds(groups map[string]bool) float64 {
	var worst float64
	for _, g := range s.ByGroup {
		if !g.Shadow && groups[g.Group] {
			worst = max(worst, g.TTFTP95Seconds)
		}
	}
	return worst
}
