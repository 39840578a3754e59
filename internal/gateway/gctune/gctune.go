package gctune

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// The bounds of the GOGC a Tuner sets, and of the garbage it allows.
const (
	MinPercent  = 10       // garbage between collections at least a tenth of the live heap
	MaxPercent  = 500      // and at most five times it
	MinHeadroom = 64 << 20 // and at least this, however little is scannable
)

// Percent is the GOGC for the next collection, given the live heap after the
// last one and the scannable part of it (what a collection marks). The heap
// may grow by target−live while that is larger, else by the scannable bytes
// or MinHeadroom, whichever is larger: within [MinPercent, MaxPercent].
//
// When all of the live heap is scannable this is never below Go's default,
// and a collection's work per byte allocated stays within the default's. A
// live heap that is mostly pointer-free (the L1 cache's ring buffers) costs
// a collection almost nothing to mark, so it need not be matched by as much
// garbage: the default would double the memory of a full cache.
func Percent(live, scan, target uint64) int {
	if live == 0 {
		return 100 // nothing measured yet: the runtime's default
	}
	headroom := max(scan, MinHeadroom)
	if target > live {
		headroom = max(headroom, target-live)
	}
	return int(min(max(headroom*100/live, MinPercent), MaxPercent))
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
	t := &Tuner{target: target, sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/heap:bytes"}}}
	t.percent = 100
	t.prior = debug.SetGCPercent(t.percent)
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
	var v [2]uint64
	for i, s := range t.sample {
		if s.Value.Kind() == metrics.KindUint64 {
			v[i] = s.Value.Uint64()
		}
	}
	if p := Percent(v[0], v[1], t.target); p != t.percent {
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
