package upstream

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
)

// Groups: each target belongs to one group (a version: a rollout's colour;
// "" is the pool's one group). Without a Split and a Shadow the pool balances
// over every target, as before groups existed. A Split assigns each request a
// group, then balances within it; the Shadow's group takes mirrored requests
// only.

// Sticky values of adminapi.Split.
const (
	StickyTenant       = "tenant"
	StickyHeaderPrefix = "header:"
)

// split is an installed adminapi.Split with the ranges of 0..99 that each
// group takes: groups in name order, each with a contiguous range. With two
// groups, moving the boundary moves only the callers between the old and the
// new boundary, and all of them into the group that grew.
type split struct {
	cfg    adminapi.Split
	names  []string // groups with a share, by name
	upper  []int    // upper[i]: bucket < upper[i] goes to names[i] (after names[:i])
	header string   // canonical header name of header:<Name> stickiness
}

func newSplit(s adminapi.Split) *split {
	out := &split{cfg: cloneSplit(s)}
	for g, pc := range s.Percent {
		if pc > 0 {
			out.names = append(out.names, g)
		}
	}
	sort.Strings(out.names)
	acc := 0
	for _, g := range out.names {
		acc += s.Percent[g]
		out.upper = append(out.upper, acc)
	}
	if h, ok := strings.CutPrefix(s.Sticky, StickyHeaderPrefix); ok {
		out.header = http.CanonicalHeaderKey(h)
	}
	return out
}

func cloneSplit(s adminapi.Split) adminapi.Split {
	c := s
	c.Percent = make(map[string]int, len(s.Percent))
	for k, v := range s.Percent {
		c.Percent[k] = v
	}
	return c
}

// groupOf is the group of bucket b (0..99).
func (s *split) groupOf(b int) string {
	for i, u := range s.upper {
		if b < u {
			return s.names[i]
		}
	}
	return s.names[len(s.names)-1]
}

// Caller is what sticky assignment may hash: the tenant's credential and the
// request's headers. An empty Credential means none.
type Caller struct {
	Credential string
	Header     http.Header
}

// stickyKey is what keeps c on one group, "" when nothing does.
func (s *split) stickyKey(c Caller) string {
	if s.header != "" && c.Header != nil {
		if v := c.Header.Get(s.header); v != "" {
			return "h:" + v
		}
	}
	if s.cfg.Sticky != "" && c.Credential != "" {
		return "t:" + c.Credential
	}
	return ""
}

// Bucket is where key falls in 0..99: FNV-1a with a final mix, stable across
// processes and restarts, so every gateway replica assigns a caller alike.
func Bucket(key string) int {
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	// splitmix64's finaliser: FNV's low bits alone are poorly spread.
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return int(h % 100)
}

// Selection is the group a request was assigned and where it goes when that
// group has no usable target.
type Selection struct {
	grouped  bool   // assigned by a split; the zero Selection is every serving target
	Group    string // the assigned group (when a split is set)
	Fallback string // "" none
}

// Select assigns a request to a group by the pool's split: by the caller's
// sticky key when there is one, at random otherwise.
func (p *Pool) Select(c Caller) Selection {
	s := p.split.Load()
	if s == nil || len(s.names) == 0 {
		return Selection{}
	}
	var b int
	if k := s.stickyKey(c); k != "" {
		b = Bucket(k)
	} else {
		b = rand.IntN(100)
	}
	g := s.groupOf(b)
	sel := Selection{grouped: true, Group: g}
	if s.cfg.Fallback != g {
		sel.Fallback = s.cfg.Fallback
	}
	return sel
}

// Sticky is the split's stickiness ("" without a split): the gateway reads
// the credential only when it matters.
func (p *Pool) Sticky() string {
	if s := p.split.Load(); s != nil {
		return s.cfg.Sticky
	}
	return ""
}

// groupIndex is the pool's targets by group, rebuilt when the target list or
// the shadow group changes.
type groupIndex struct {
	src     *[]*Target
	shadow  string
	by      map[string][]*Target
	serving []*Target // every target outside the shadow group
}

func (p *Pool) index() *groupIndex {
	src := p.targets.Load()
	shadow := ""
	if sh := p.shadow.Load(); sh != nil {
		shadow = sh.Group
	}
	if ix := p.gidx.Load(); ix != nil && ix.src == src && ix.shadow == shadow {
		return ix
	}
	ix := &groupIndex{src: src, shadow: shadow, by: map[string][]*Target{}}
	for _, t := range *src {
		g := t.Group()
		ix.by[g] = append(ix.by[g], t)
		if sh := p.shadow.Load(); sh == nil || g != sh.Group {
			ix.serving = append(ix.serving, t)
		}
	}
	p.gidx.Store(ix)
	return ix
}

// targetsOf is what a request of sel may be sent to.
func (p *Pool) targetsOf(all bool, group string) []*Target {
	ix := p.index()
	if all {
		if ix.shadow == "" {
			return *ix.src
		}
		return ix.serving
	}
	return ix.by[group]
}

// groupsOf lists the groups of ts.
func groupsOf(ts []adminapi.Target) map[string]bool {
	out := map[string]bool{}
	for _, t := range ts {
		out[t.Group] = true
	}
	return out
}

// ValidateSplit says what is wrong with s for a pool whose targets are in
// groups; nil when it may be installed.
func ValidateSplit(s adminapi.Split, groups map[string]bool) error {
	if len(s.Percent) == 0 {
		return nil // removes the split
	}
	sum := 0
	names := make([]string, 0, len(s.Percent))
	for g, pc := range s.Percent {
		names = append(names, g)
		if pc < 0 || pc > 100 {
			return fmt.Errorf("split: percent of group %q is %d; each share is between 0 and 100", g, pc)
		}
		sum += pc
	}
	slices.Sort(names)
	if sum != 100 {
		return fmt.Errorf("split: the shares add up to %d; they must add up to 100", sum)
	}
	for _, g := range names {
		if s.Percent[g] > 0 && !groups[g] {
			return fmt.Errorf("split: group %q has no target in the pool; put its targets in first (PUT targets with group %q)", g, g)
		}
	}
	if s.Fallback != "" && !groups[s.Fallback] {
		return fmt.Errorf("split: fallback group %q has no target in the pool", s.Fallback)
	}
	switch {
	case s.Sticky == "", s.Sticky == StickyTenant:
	case strings.HasPrefix(s.Sticky, StickyHeaderPrefix):
		h := strings.TrimPrefix(s.Sticky, StickyHeaderPrefix)
		if !isToken(h) {
			return fmt.Errorf("split: sticky %q names no valid header; write header:X-Session-Id", s.Sticky)
		}
	default:
		return fmt.Errorf("split: sticky %q is not \"\", %q or \"header:<Name>\"", s.Sticky, StickyTenant)
	}
	return nil
}

// ValidateShadow says what is wrong with sh for a pool whose targets are in
// groups and whose split is s (nil: none).
func ValidateShadow(sh adminapi.Shadow, groups map[string]bool, s *adminapi.Split) error {
	if sh.Percent == 0 && sh.Group == "" {
		return nil // removes the shadow
	}
	if sh.Percent < 0 || sh.Percent > 100 {
		return fmt.Errorf("shadow: percent %d is not between 0 and 100", sh.Percent)
	}
	if !groups[sh.Group] {
		return fmt.Errorf("shadow: group %q has no target in the pool; put its targets in first (PUT targets with group %q)", sh.Group, sh.Group)
	}
	if s != nil && (s.Percent[sh.Group] > 0 || s.Fallback == sh.Group) {
		return fmt.Errorf("shadow: group %q serves clients in the split; a shadow answers none", sh.Group)
	}
	if s == nil || len(s.Percent) == 0 {
		for g := range groups {
			if g != sh.Group {
				return nil
			}
		}
		return fmt.Errorf("shadow: group %q is every target of the pool; nothing would be left to answer clients", sh.Group)
	}
	return nil
}

// Split is the installed split, nil when none.
func (p *Pool) Split() *adminapi.Split {
	s := p.split.Load()
	if s == nil {
		return nil
	}
	c := cloneSplit(s.cfg)
	return &c
}

// Shadow is the installed shadow, nil when none.
func (p *Pool) Shadow() *adminapi.Shadow {
	sh := p.shadow.Load()
	if sh == nil {
		return nil
	}
	c := *sh
	return &c
}

// currentGroups are the groups of the pool's targets.
func (p *Pool) currentGroups() map[string]bool {
	out := map[string]bool{}
	for _, t := range p.Targets() {
		out[t.Group()] = true
	}
	return out
}

// SetSplit installs s (an empty Percent removes the split) once it is valid
// for the pool's targets. It outlives a configuration reload, like targets
// the admin API set.
func (p *Pool) SetSplit(s adminapi.Split) (adminapi.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	groups := p.currentGroups()
	if err := ValidateSplit(s, groups); err != nil {
		return adminapi.Pool{}, err
	}
	if sh := p.shadow.Load(); sh != nil && len(s.Percent) > 0 {
		if err := ValidateShadow(*sh, groups, &s); err != nil {
			return adminapi.Pool{}, fmt.Errorf("%w; remove the shadow first", err)
		}
	}
	p.storeSplit(s)
	p.adminChanged.Store(true)
	return p.Snapshot(), nil
}

func (p *Pool) storeSplit(s adminapi.Split) {
	if len(s.Percent) == 0 {
		p.split.Store(nil)
		return
	}
	p.split.Store(newSplit(s))
}

// SetShadow installs sh (group "" and percent 0 remove it) once it is valid
// for the pool's targets and split.
func (p *Pool) SetShadow(sh adminapi.Shadow) (adminapi.Pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := ValidateShadow(sh, p.currentGroups(), p.Split()); err != nil {
		return adminapi.Pool{}, err
	}
	if sh.Group == "" && sh.Percent == 0 {
		p.shadow.Store(nil)
	} else {
		p.shadow.Store(&sh)
	}
	p.adminChanged.Store(true)
	return p.Snapshot(), nil
}

// keepValid drops the split or the shadow when the targets no longer hold
// every group they name: a rollout that removes the old colour ends the
// fallback to it. Callers hold mu.
func (p *Pool) keepValid(groups map[string]bool) {
	if s := p.Split(); s != nil && ValidateSplit(*s, groups) != nil {
		p.split.Store(nil)
	}
	if sh := p.Shadow(); sh != nil && ValidateShadow(*sh, groups, p.Split()) != nil {
		p.shadow.Store(nil)
	}
}

// isToken says whether h is a header name (an RFC 9110 token).
func isToken(h string) bool {
	if h == "" {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}
