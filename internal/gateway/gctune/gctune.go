package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The bounds of the GOGC a Tuner sets.
const (
	MinPercent = 100 // the runtime's default: a Tuner never collects more often
	MaxPercent = 500 // garbage between collections at most five times the live heap
)

// Percent is the GOGC that starts the next collection when the heap reaches
// target, given live bytes after the last one, within [MinPercent, MaxPercent].
func Percent(live, target uint64) int {
	if live == 0 || target <= live {
		return MinPercent
	}
	p := (target - live) * 100 / live
	return int(min(max(p, MinPercent), MaxPercent))
}

// Tuner sets GOGC after every collection; see the package comment.
type Tuner struct {
	target uint64
	sample []metrics.Sample

	mu      sync.Mutex
	stopped bool
	percent int // the GOGC set last
	prior   int // the GOGC before Start, restored by Stop
}

// Start tunes GOGC toward a heap of target bytes until Stop. It returns nil,
// and changes nothing, when target is 0 or the environment sets GOGC or
// GOMEMLIMIT. A nil *Tuner's methods do nothing.
func Start(target uint64) *Tuner {
	if target == 0 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	t := &Tuner{target: target, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.percent = MinPercent
	t.prior = debug.SetGCPercent(MinPercent)
	t.tune()
	arm(t)
	return t
}

// arm makes the next collection call t.tune: a sentinel that only its
// finalizer reaches is found unreachable by every collection, and the
// finalizer arms it again until t stops.
func arm(t *Tuner) { runtime.SetFinalizer(&sentinel{t: t}, onCollect) }

type sentinel struct{ t *Tuner }

func onCollect(s *sentinel) {
	if s.t.tune() {
		runtime.SetFinalizer(s, onCollect)
	}
}

// tune sets GOGC from the live heap; false once stopped.
func (t *Tuner) tune() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return false
	}
	metrics.Read(t.sample)
	var live uint64
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if p := Percent(live, t.target); p != t.percent {
		t.percent = p
		debug.SetGCPercent(p)
	}
	return true
}

// GCPercent is the GOGC the tuner set last; 0 for a nil Tuner.
func (t *Tuner) GCPercent() int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop ends the tuning and restores the GOGC from before Start, unless
// something else has set GOGC since (another Tuner in the same process, as
// in tests that run several gateways).
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	cur := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(cur)
	if cur[0].Value.Kind() == metrics.KindUint64 && int(cur[0].Value.Uint64()) == t.percent {
		debug.SetGCPercent(t.prior)
	}
}
