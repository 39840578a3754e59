package rollout

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// The fake platform's traffic split, mirror and operator commands, for the
// canary and shadow strategies. Mutating calls go through call(), so strict
// tests list them; reading figures and commands does not (a run reads them
// every interval), but a kill can still strike there.

// splitState is what the fake's gateway pool holds.
type splitState struct {
	joined  bool
	percent map[Color]int
	shadow  int
	kept    Color // the colour Keep left alone in the pool
	sticky  string
	// groups answers GroupStats; n counts reads, at is the fake time of the read.
	groups   func(n int, window time.Duration) []GroupStats
	reads    int
	commands []Command
	// onRead runs after each figures read, e.g. to give an operator command at a step.
	onRead func(n int, f *fakePlatform)
}

func (f *fakePlatform) Join(_ context.Context, to, from Deployment) error {
	e := f.call(fmt.Sprintf("Join %s beside %s", dep(to), dep(from)))
	if e.err == nil {
		f.mu.Lock()
		f.split.joined, f.split.percent = true, map[Color]int{from.Color: 100, to.Color: 0}
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) SetSplit(_ context.Context, percent map[Color]int, sticky string, fallback Color) error {
	var parts []string
	for c, p := range percent {
		parts = append(parts, fmt.Sprintf("%s=%d", c, p))
	}
	sort.Strings(parts)
	e := f.call("SetSplit " + strings.Join(parts, " ") + " fallback " + string(fallback))
	if e.err == nil {
		f.mu.Lock()
		f.split.percent, f.split.sticky = percent, sticky
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) SetShadow(_ context.Context, c Color, percent int) error {
	e := f.call(fmt.Sprintf("SetShadow %s %d", c, percent))
	if e.err == nil {
		f.mu.Lock()
		f.split.shadow = percent
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) Keep(_ context.Context, keep, drop Deployment) error {
	e := f.call(fmt.Sprintf("Keep %s drop %s", dep(keep), dep(drop)))
	if e.err == nil {
		f.mu.Lock()
		f.split = splitState{kept: keep.Color, groups: f.split.groups, reads: f.split.reads, commands: f.split.commands, onRead: f.split.onRead}
		f.mu.Unlock()
	}
	return e.err
}

func (f *fakePlatform) GroupStats(_ context.Context, window time.Duration) ([]GroupStats, error) {
	f.mu.Lock()
	if f.dead {
		f.mu.Unlock()
		panic(errKilled)
	}
	f.split.reads++
	n, groups, onRead := f.split.reads, f.split.groups, f.split.onRead
	if f.killAt == "GroupStats" {
		f.dead, f.lockDead = true, true
		f.mu.Unlock()
		panic(errKilled)
	}
	f.mu.Unlock()
	var out []GroupStats
	if groups != nil {
		out = groups(n, window)
	} else {
		out = []GroupStats{goodStats(Blue, 200), goodStats(Green, 200)}
	}
	if onRead != nil {
		onRead(n, f)
	}
	return out, nil
}

func (f *fakePlatform) SendCommand(_ context.Context, c Command) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.split.commands = append(f.split.commands[:0], c)
	return nil
}

func (f *fakePlatform) TakeCommand(context.Context) (*Command, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.dead {
		panic(errKilled)
	}
	if len(f.split.commands) == 0 {
		return nil, nil
	}
	c := f.split.commands[0]
	f.split.commands = nil
	return &c, nil
}

// goodStats is a healthy colour with n requests.
func goodStats(c Color, n int64) GroupStats {
	return GroupStats{Color: c, Requests: n, Errors: 0, TTFTP95: 200 * time.Millisecond, TPOTP95: 20 * time.Millisecond,
		TokensPerSecond: 50, OutputTokensP50: 120, OutputTokensMean: 130, FinishReasons: map[string]int64{"stop": n * 9 / 10, "length": n / 10}}
}
