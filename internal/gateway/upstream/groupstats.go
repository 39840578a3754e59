package upstream

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
)

// Per-group figures for a canary's analysis, kept per second for
// ringSeconds in fixed histograms (finehist.go): memory is bounded whatever
// the traffic, about 1.6 KiB a second, 0.5 MiB a group, 8 MiB at most.

const (
	ttftBase = 0.001  // seconds: first bucket of time to first token
	tpotBase = 0.0001 // seconds: first bucket of time per output token
	// maxGroupRings bounds the groups measured at once (group names come
	// from the admin API; a rollout uses two or three, and a shadow one more).
	maxGroupRings = 16
)

// finishNames are the finish reasons counted one by one; any other counts as "other".
var finishNames = [...]string{"stop", "length", "content_filter", "tool_calls", "function_call", "", "other"}

func finishIndex(r string) int {
	for i, n := range finishNames[:len(finishNames)-1] {
		if n == r {
			return i
		}
	}
	return len(finishNames) - 1
}

// Answer is what the gateway measured of one complete answer.
type Answer struct {
	// TTFT is the time from sending the request to the first byte of the
	// answer's body (the first event of a stream).
	TTFT time.Duration
	// Total is the time from sending the request to the answer's end.
	Total time.Duration
	// Tokens is the output tokens: the usage's completion_tokens, or the
	// content chunks of a stream without usage; -1 unknown.
	Tokens int
	// Streamed: time per output token applies.
	Streamed bool
	// Finish is the final choice's finish_reason ("" unknown).
	Finish string
}

type groupKey struct {
	name   string
	shadow bool
}

type groupRing struct {
	mu sync.Mutex
	b  [ringSeconds]groupSecond
}

type groupSecond struct {
	unix                  int64
	req, errs, drop, fell int64
	answers               int64 // answers with a token count
	tokens                int64
	genSeconds            float64 // sum of Total over answers with a token count
	ttft, tpot, outTok    [fineBuckets]uint32
	finish                [len(finishNames)]uint32
}

func (r *groupRing) at(now time.Time) *groupSecond {
	sec := now.Unix()
	b := &r.b[sec%ringSeconds]
	if b.unix != sec {
		*b = groupSecond{unix: sec}
	}
	return b
}

// ring returns the figures of group (shadow: its mirrored traffic), nil when
// too many groups are measured already.
func (p *Pool) groupRing(name string, shadow bool) *groupRing {
	k := groupKey{name, shadow}
	if r, ok := p.gfast.Load(k); ok {
		return r.(*groupRing) // every request looks up its group: no lock on the way
	}
	p.gmu.Lock()
	defer p.gmu.Unlock()
	if r, ok := p.grings[k]; ok {
		p.gfast.Store(k, r)
		return r
	}
	if p.grings == nil {
		p.grings = map[groupKey]*groupRing{}
	}
	if len(p.grings) >= maxGroupRings {
		// Forget groups that left the pool before refusing a new one.
		cur := p.currentGroups()
		for k := range p.grings {
			if !cur[k.name] {
				delete(p.grings, k)
				p.gfast.Delete(k)
			}
		}
		if len(p.grings) >= maxGroupRings {
			return nil
		}
	}
	r := &groupRing{}
	p.grings[k] = r
	p.gfast.Store(k, r)
	return r
}

// count records a request of the group; fellBack: it was assigned to it but
// served by the fallback.
func (p *Pool) countGroup(name string, shadow bool, failed, dropped, fellBack bool) {
	r := p.groupRing(name, shadow)
	if r == nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	b := r.at(now)
	switch {
	case dropped:
		b.drop++
	case fellBack:
		b.fell++
	default:
		b.req++
		if failed {
			b.errs++
		}
	}
	r.mu.Unlock()
}

func (p *Pool) observeGroup(name string, shadow bool, a Answer) {
	r := p.groupRing(name, shadow)
	if r == nil {
		return
	}
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.at(now)
	b.ttft[fineIndex(a.TTFT.Seconds(), ttftBase)]++
	b.finish[finishIndex(a.Finish)]++
	if a.Tokens < 0 {
		return
	}
	b.answers++
	b.tokens += int64(a.Tokens)
	b.genSeconds += a.Total.Seconds()
	b.outTok[fineIndex(float64(a.Tokens), 1)]++
	if a.Streamed && a.Tokens >= 2 && a.Total > a.TTFT {
		per := (a.Total - a.TTFT).Seconds() / float64(a.Tokens-1)
		b.tpot[fineIndex(per, tpotBase)]++
	}
}

// groupStats sums every measured group over the window.
func (p *Pool) groupStats(now time.Time, window time.Duration) []adminapi.GroupStats {
	p.gmu.Lock()
	keys := make([]groupKey, 0, len(p.grings))
	rings := make([]*groupRing, 0, len(p.grings))
	for k, r := range p.grings {
		keys = append(keys, k)
		rings = append(rings, r)
	}
	p.gmu.Unlock()
	secs := int64(math.Ceil(window.Seconds()))
	secs = max(1, min(secs, ringSeconds))
	end := now.Unix()
	var out []adminapi.GroupStats
	for i, r := range rings {
		var s groupSecond
		var ttft, tpot, tok [fineBuckets]uint64
		any := false
		r.mu.Lock()
		for sec := end - secs + 1; sec <= end; sec++ {
			b := &r.b[sec%ringSeconds]
			if b.unix != sec {
				continue
			}
			any = true
			s.req += b.req
			s.errs += b.errs
			s.drop += b.drop
			s.fell += b.fell
			s.answers += b.answers
			s.tokens += b.tokens
			s.genSeconds += b.genSeconds
			for j := range fineBuckets {
				ttft[j] += uint64(b.ttft[j])
				tpot[j] += uint64(b.tpot[j])
				tok[j] += uint64(b.outTok[j])
			}
			for j := range s.finish {
				s.finish[j] += b.finish[j]
			}
		}
		r.mu.Unlock()
		if !any {
			continue
		}
		gs := adminapi.GroupStats{
			Group: keys[i].name, Shadow: keys[i].shadow,
			Requests: s.req, Errors: s.errs, Dropped: s.drop, FellBack: s.fell,
			TTFTP95Seconds:    fineQuantile(&ttft, 0.95, ttftBase),
			TPOTP95Seconds:    fineQuantile(&tpot, 0.95, tpotBase),
			TTFTP95LowSeconds: fineQuantile(&ttft, lowRank(&ttft, 0.95), ttftBase),
			TPOTP95LowSeconds: fineQuantile(&tpot, lowRank(&tpot, 0.95), tpotBase),
			OutputTokensP50:   fineIntQuantile(&tok, 0.5),
		}
		if s.answers > 0 {
			gs.OutputTokensMean = float64(s.tokens) / float64(s.answers)
		}
		if s.genSeconds > 0 {
			gs.TokensPerSecond = float64(s.tokens) / s.genSeconds
		}
		for j, n := range s.finish {
			if n == 0 {
				continue
			}
			if gs.FinishReasons == nil {
				gs.FinishReasons = map[string]int64{}
			}
			gs.FinishReasons[finishNames[j]] += int64(n)
		}
		out = append(out, gs)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Group != out[j].Group {
			return out[i].Group < out[j].Group
		}
		return !out[i].Shadow && out[j].Shadow
	})
	return out
}
