package upstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
)

// groupedPool is a pool whose targets are n healthy servers per group, put in
// by the admin API's swap as a rollout does.
func groupedPool(t *testing.T, cfg PoolConfig, groups map[string]int, split *adminapi.Split) *Pool {
	t.Helper()
	cfg.Targets = []TargetConfig{{URL: healthServer(t, nil)}}
	p := newTestPool(t, cfg)
	var ts []adminapi.Target
	for g, n := range groups {
		for range n {
			ts = append(ts, adminapi.Target{URL: healthServer(t, nil), Group: g})
		}
	}
	if _, err := p.Replace(t.Context(), adminapi.ReplaceTargets{Targets: ts, Split: split}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBucketSharesStayWithinTolerance(t *testing.T) {
	t.Parallel()
	for _, pc := range []int{1, 10, 25, 50, 90} {
		s := newSplit(adminapi.Split{Percent: map[string]int{"blue": 100 - pc, "green": pc}, Sticky: StickyTenant})
		n := 0
		const keys = 10000
		for i := range keys {
			if s.groupOf(Bucket(fmt.Sprintf("tenant-%d", i))) == "green" {
				n++
			}
		}
		got := float64(n) * 100 / keys
		// Binomial: sd = sqrt(p(1-p)/n) ≤ 0.5 points at 10k keys; allow 4 sd.
		if math.Abs(got-float64(pc)) > 2 {
			t.Errorf("green at %d%%: %.2f%% of %d keys", pc, got, keys)
		}
	}
}

// Raising the new group's share only moves callers into it, whichever side
// of the old group its name sorts on; a caller stays where it is while the
// shares hold.
func TestStickyAssignmentMovesOnlyIntoTheGrowingGroup(t *testing.T) {
	t.Parallel()
	for _, names := range [][2]string{{"blue", "green"}, {"green", "blue"}} {
		old, canary := names[0], names[1]
		prev := map[string]string{}
		for pc := 0; pc <= 100; pc += 5 {
			s := newSplit(adminapi.Split{Percent: map[string]int{old: 100 - pc, canary: pc}, Sticky: StickyTenant})
			for i := range 2000 {
				key := fmt.Sprintf("t:key-%d", i)
				g := s.groupOf(Bucket(key))
				if again := s.groupOf(Bucket(key)); again != g {
					t.Fatalf("%s flipped between %s and %s at the same shares", key, g, again)
				}
				if p, ok := prev[key]; ok && p == canary && g != canary {
					t.Fatalf("%s left %s for %s when %s grew to %d%%", key, canary, g, canary, pc)
				}
				prev[key] = g
			}
		}
		for k, g := range prev {
			if g != canary {
				t.Fatalf("at 100%% %s is still on %s", k, g)
			}
		}
	}
}

func TestSelectUsesHeaderThenTenantThenRandom(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 1},
		&adminapi.Split{Percent: map[string]int{"blue": 50, "green": 50}, Sticky: "header:X-Session-Id"})
	h := http.Header{"X-Session-Id": {"conv-1"}}
	first := p.Select(Caller{Credential: "k1", Header: h}).Group
	for i := range 50 {
		// Another credential, the same conversation: the same group.
		if g := p.Select(Caller{Credential: fmt.Sprint("k", i), Header: h}).Group; g != first {
			t.Fatalf("conversation conv-1 went to %s, then %s", first, g)
		}
	}
	byTenant := p.Select(Caller{Credential: "k1"}).Group
	for range 50 {
		if g := p.Select(Caller{Credential: "k1"}).Group; g != byTenant {
			t.Fatalf("no header: tenant k1 went to %s, then %s", byTenant, g)
		}
	}
	seen := map[string]bool{}
	for range 200 {
		seen[p.Select(Caller{}).Group] = true
	}
	if !seen["blue"] || !seen["green"] {
		t.Fatalf("no key: 200 requests went only to %v", seen)
	}
}

func TestFallbackTakesRequestsOfAGroupThatIsDown(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 2},
		&adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	for i := range 20 {
		l, err := p.AcquireFor(t.Context(), p.Select(Caller{}))
		if err != nil || l.Group() != "green" {
			t.Fatalf("request %d with green up: %v on %q", i, err, l.Group())
		}
		l.Done(Outcome{Status: 200})
	}
	for _, tg := range p.Targets() {
		if tg.Group() == "green" {
			tg.SetHealthyForTest(false)
		}
	}
	for i := range 10 {
		l, err := p.AcquireFor(t.Context(), p.Select(Caller{}))
		if err != nil || l.Group() != "blue" {
			t.Fatalf("request %d with green down: %v on %q", i, err, l.Group())
		}
		if g, fell := l.Assigned(); g != "green" || !fell {
			t.Fatalf("assigned %q, fell back %v", g, fell)
		}
		l.Done(Outcome{Status: 200})
	}
	st := p.Stats(time.Minute)
	got := map[string]adminapi.GroupStats{}
	for _, g := range st.ByGroup {
		got[g.Group] = g
	}
	if got["green"].Requests != 20 || got["green"].FellBack != 10 || got["blue"].Requests != 10 {
		t.Fatalf("by group: %+v", st.ByGroup)
	}
	// Without a fallback, the same request finds nothing.
	if _, err := p.SetSplit(adminapi.Split{Percent: map[string]int{"green": 100}}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.AcquireFor(t.Context(), p.Select(Caller{})); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("green down, no fallback: %v, want ErrUnavailable", err)
	}
}

// A group that is only full queues and is answered 503 at the queue's end:
// the fallback is for a version that is down, not overflow capacity.
func TestFullGroupDoesNotSpillToFallback(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{MaxInflight: 1, Queue: Queue{Size: -1}}, map[string]int{"blue": 1, "green": 1},
		&adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	held, err := p.AcquireFor(t.Context(), p.Select(Caller{}))
	if err != nil || held.Group() != "green" {
		t.Fatalf("first: %v %q", err, held.Group())
	}
	defer held.Done(Outcome{Status: 200})
	if l, err := p.AcquireFor(t.Context(), p.Select(Caller{})); !errors.Is(err, ErrSaturated) {
		t.Fatalf("green full: leased %q (%v), want ErrSaturated", l.Group(), err)
	}
}

func TestAcquireOtherGoesToTheFallbackWhenTheGroupRefuses(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 1},
		&adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue"})
	l, err := p.AcquireFor(t.Context(), p.Select(Caller{}))
	if err != nil || l.Group() != "green" {
		t.Fatal(err)
	}
	next, err := p.AcquireOther(l, []*Target{l.Target})
	if err != nil || next.Group() != "blue" {
		t.Fatalf("after green refused: %v on %q", err, next.Group())
	}
	if _, fell := next.Assigned(); !fell {
		t.Fatal("the retry on blue is not counted as a fallback")
	}
	l.Done(Outcome{Err: errors.New("refused")})
	next.Done(Outcome{Status: 200})
}

func TestSplitAndShadowValidation(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 1}, nil)
	for _, c := range []struct {
		s    adminapi.Split
		want string
	}{
		{adminapi.Split{Percent: map[string]int{"blue": 50, "green": 40}}, "add up to 90"},
		{adminapi.Split{Percent: map[string]int{"blue": 150, "green": -50}}, "between 0 and 100"},
		{adminapi.Split{Percent: map[string]int{"blue": 50, "red": 50}}, `group "red" has no target`},
		{adminapi.Split{Percent: map[string]int{"blue": 100}, Fallback: "red"}, `fallback group "red"`},
		{adminapi.Split{Percent: map[string]int{"blue": 100}, Sticky: "cookie"}, "sticky"},
		{adminapi.Split{Percent: map[string]int{"blue": 100}, Sticky: "header:"}, "no valid header"},
		{adminapi.Split{Percent: map[string]int{"blue": 100}, Sticky: "header:X Id"}, "no valid header"},
	} {
		if _, err := p.SetSplit(c.s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetSplit(%+v) = %v, want an error with %q", c.s, err, c.want)
		}
	}
	if p.Split() != nil {
		t.Fatalf("a refused split was installed: %+v", p.Split())
	}
	if _, err := p.SetSplit(adminapi.Split{Percent: map[string]int{"blue": 100}, Sticky: "header:X-Session-Id"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sh   adminapi.Shadow
		want string
	}{
		{adminapi.Shadow{Group: "blue", Percent: 10}, "serves clients"},
		{adminapi.Shadow{Group: "red", Percent: 10}, `group "red" has no target`},
		{adminapi.Shadow{Group: "green", Percent: 101}, "between 0 and 100"},
	} {
		if _, err := p.SetShadow(c.sh); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("SetShadow(%+v) = %v, want an error with %q", c.sh, err, c.want)
		}
	}
	snap, err := p.SetShadow(adminapi.Shadow{Group: "green", Percent: 10})
	if err != nil || snap.Shadow == nil || snap.Split == nil || snap.Split.Percent["blue"] != 100 {
		t.Fatalf("shadow: %+v %v", snap, err)
	}
	// Without a split, the shadow group still takes no client request.
	if _, err := p.SetSplit(adminapi.Split{}); err != nil {
		t.Fatal(err)
	}
	for range 50 {
		l, err := p.Acquire(t.Context())
		if err != nil || l.Group() != "blue" {
			t.Fatalf("shadow green took a client request: %v %q", err, l.Group())
		}
		l.Done(Outcome{Status: 200})
	}
	if _, err := p.SetShadow(adminapi.Shadow{}); err != nil || p.Shadow() != nil {
		t.Fatalf("removing the shadow: %v %+v", err, p.Shadow())
	}
}

// The split goes in with the targets in one swap, and goes away with the
// group it falls back to; a reload keeps both, like admin-set targets.
func TestReplaceCarriesTheSplitAndAdoptKeepsIt(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 1},
		&adminapi.Split{Percent: map[string]int{"green": 100}, Fallback: "blue", Sticky: StickyTenant})
	if s := p.Split(); s == nil || s.Fallback != "blue" {
		t.Fatalf("split after the swap: %+v", s)
	}
	if _, err := p.Replace(context.Background(), adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: healthServer(t, nil), Group: "blue"}},
		Split: &adminapi.Split{Percent: map[string]int{"green": 100}}}); err == nil {
		t.Fatal("a split naming a group the new targets lack was accepted")
	}
	cfg := PoolConfig{Targets: []TargetConfig{{URL: "http://config:1"}}}
	fresh := newTestPool(t, cfg)
	if err := fresh.Adopt(p); err != nil {
		t.Fatal(err)
	}
	if s := fresh.Split(); s == nil || s.Percent["green"] != 100 || s.Fallback != "blue" {
		t.Fatalf("split after a reload: %+v", s)
	}
	groups := map[string]int{}
	for _, tg := range fresh.Snapshot().Targets {
		groups[tg.Group]++
	}
	if groups["blue"] != 1 || groups["green"] != 1 {
		t.Fatalf("groups after a reload: %v", groups)
	}
	var green []adminapi.Target
	for _, tg := range p.Snapshot().Targets {
		if tg.Group == "green" {
			green = append(green, adminapi.Target{URL: tg.URL, Group: "green"})
		}
	}
	if _, err := p.Replace(context.Background(), adminapi.ReplaceTargets{Targets: green}); err != nil {
		t.Fatal(err)
	}
	if s := p.Split(); s != nil {
		t.Fatalf("the split outlived its fallback group: %+v", s)
	}
}

func TestGroupFigures(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{}, map[string]int{"blue": 1, "green": 1},
		&adminapi.Split{Percent: map[string]int{"blue": 50, "green": 50}})
	answer := map[string]Answer{
		// blue: 16 tokens streamed at 10 ms each after a 100 ms first token.
		"blue": {TTFT: 100 * time.Millisecond, Total: 250 * time.Millisecond, Tokens: 16, Streamed: true, Finish: "stop"},
		// green: half as long and cut at length.
		"green": {TTFT: 100 * time.Millisecond, Total: 170 * time.Millisecond, Tokens: 8, Streamed: true, Finish: "length"},
	}
	for range 40 {
		l, err := p.AcquireFor(t.Context(), p.Select(Caller{}))
		if err != nil {
			t.Fatal(err)
		}
		l.Observe(answer[l.Group()])
		l.Done(Outcome{Status: 200})
	}
	got := map[string]adminapi.GroupStats{}
	for _, g := range p.Stats(time.Minute).ByGroup {
		got[g.Group] = g
	}
	b, g := got["blue"], got["green"]
	if b.Requests+g.Requests != 40 || b.Requests == 0 || g.Requests == 0 {
		t.Fatalf("requests: %+v", got)
	}
	if b.OutputTokensMean != 16 || g.OutputTokensMean != 8 || b.OutputTokensP50 != 16 || g.OutputTokensP50 != 8 {
		t.Fatalf("output length: blue %+v green %+v", b, g)
	}
	if b.FinishReasons["stop"] != b.Requests || g.FinishReasons["length"] != g.Requests {
		t.Fatalf("finish reasons: blue %v green %v", b.FinishReasons, g.FinishReasons)
	}
	// p95 is interpolated within its bucket: within one bucket (×2^⅛) of the value.
	within := func(name string, got, want float64) {
		if got < want/fineFactor || got > want*fineFactor {
			t.Errorf("%s = %v, want in [%v, %v]", name, got, want/fineFactor, want*fineFactor)
		}
	}
	within("blue ttft", b.TTFTP95Seconds, 0.1)
	within("blue tpot", b.TPOTP95Seconds, 0.01)
	if math.Abs(b.TokensPerSecond-64) > 0.01 || math.Abs(g.TokensPerSecond-8/0.17) > 0.01 {
		t.Fatalf("tokens/s: blue %v green %v", b.TokensPerSecond, g.TokensPerSecond)
	}
}

func TestMirrorLeasesAreBoundedAndDropped(t *testing.T) {
	t.Parallel()
	p := groupedPool(t, PoolConfig{MaxInflight: -1}, map[string]int{"blue": 1, "green": 1}, nil)
	if _, ok := p.AcquireMirror(); ok {
		t.Fatal("a mirror lease without a shadow")
	}
	if _, err := p.SetShadow(adminapi.Shadow{Group: "green", Percent: 100}); err != nil {
		t.Fatal(err)
	}
	var held []Lease
	for range maxMirrors {
		l, ok := p.AcquireMirror()
		if !ok || l.Group() != "green" || !l.Mirror() {
			t.Fatalf("mirror %d: %v %q", len(held), ok, l.Group())
		}
		held = append(held, l)
	}
	if _, ok := p.AcquireMirror(); ok {
		t.Fatal("a mirror past the bound was sent")
	}
	for _, l := range held {
		l.Done(Outcome{Status: 200})
	}
	st := p.Stats(time.Minute)
	if st.Requests != 0 {
		t.Fatalf("mirrors counted in the pool's client figures: %d", st.Requests)
	}
	var sh adminapi.GroupStats
	for _, g := range st.ByGroup {
		if g.Group == "green" && g.Shadow {
			sh = g
		}
	}
	if sh.Requests != maxMirrors || sh.Dropped != 1 {
		t.Fatalf("shadow figures: %+v", sh)
	}
}
