package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const Mi = 1 << 20
	for _, tt := range []struct {
		live, scan, target uint64
		want               int
	}{
		{0, 0, 256 * Mi, 100},               // nothing measured yet: the default
		{40 * Mi, 40 * Mi, 256 * Mi, 500},   // 540 wanted, capped
		{64 * Mi, 64 * Mi, 256 * Mi, 300},   // the next collection at 256Mi
		{85 * Mi, 85 * Mi, 256 * Mi, 201},   // 201.2, rounded down
		{128 * Mi, 128 * Mi, 256 * Mi, 100}, // all scannable, half the target: the default from here on
		{200 * Mi, 200 * Mi, 256 * Mi, 100}, // never more often than the default
		{300 * Mi, 300 * Mi, 256 * Mi, 100}, // past the target
		{300 * Mi, 150 * Mi, 256 * Mi, 50},  // half of it pointer-free: garbage as large as the scannable half
		{284 * Mi, 28 * Mi, 256 * Mi, 22},   // a full 256Mi L1: 64Mi of garbage, not 284
		{2048 * Mi, 20 * Mi, 256 * Mi, 10},  // a 2Gi L1: at least a tenth
		{100 * Mi, 10 * Mi, 128 * Mi, 64},   // mostly pointer-free, near the target: at least 64Mi
		{1, 1, 1 << 40, 500},
	} {
		if got := Percent(tt.live, tt.scan, tt.target); got != tt.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", tt.live, tt.scan, tt.target, got, tt.want)
		}
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// waitGOGC collects until the runtime's GOGC is want; finalizers run on
// their own goroutine after a collection, so it may take a moment.
func waitGOGC(t *testing.T, want uint64) {
	t.Helper()
	waitGOGCIn(t, want, want, "")
}

// waitGOGCIn collects until the runtime's GOGC is within [lo, hi].
func waitGOGCIn(t *testing.T, lo, hi uint64, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p := gogc(); p < lo || p > hi; p = gogc() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want %d..%d%s", p, lo, hi, why)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTunerFollowsLiveHeap(t *testing.T) {
	t.Setenv("GOGC", "") // the test's own environment must not turn it off
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))

	// A test binary's live heap is a few MiB: far below 1Gi, the cap applies.
	tu := Start(1 << 30)
	if tu == nil {
		t.Fatal("Start returned nil")
	}
	waitGOGC(t, MaxPercent)

	// 96Mi held live against a 256Mi target: about 160.
	tu.Stop()
	waitGOGC(t, 100)
	hold := make([][]byte, 96)
	for i := range hold {
		hold[i] = make([]byte, 1<<20)
	}
	tu = Start(256 << 20)
	defer tu.Stop()
	runtime.GC()
	runtime.GC()
	waitGOGCIn(t, 140, 170, " with 96Mi live against 256Mi")
	runtime.KeepAlive(hold)
	if got := tu.GCPercent(); got < 140 || got > 170 {
		t.Errorf("GCPercent() = %d", got)
	}

	// Stop restores what was there before.
	tu.Stop()
	waitGOGC(t, 100)
}

func TestOperatorSettingsWin(t *testing.T) {
	for _, env := range []string{"GOGC", "GOMEMLIMIT"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv("GOGC", "")
			t.Setenv("GOMEMLIMIT", "")
			t.Setenv(env, "200")
			if tu := Start(1 << 30); tu != nil {
				tu.Stop()
				t.Fatalf("Start tuned with %s set", env)
			}
		})
	}
	if tu := Start(0); tu != nil {
		t.Fatal("Start tuned with a zero target")
	}
	var nilTuner *Tuner
	nilTuner.Stop()
	if nilTuner.GCPercent() != 0 {
		t.Error("a nil Tuner reports a GOGC")
	}
}

func TestStopLeavesAnotherSetting(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tu := Start(1 << 30)
	waitGOGC(t, MaxPercent)
	debug.SetGCPercent(250) // someone else's choice, after the tuner's
	tu.Stop()
	if got := gogc(); got != 250 {
		t.Fatalf("GOGC is %d after Stop, want the 250 set after the tuner", got)
	}
}

// A live heap that is mostly pointer-free (a full L1) gets 64Mi of garbage
// between collections, not as much again as it holds.
func TestTunerSparesPointerFreeHeap(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	arena := make([]byte, 256<<20)
	tu := Start(64 << 20)
	defer tu.Stop()
	waitGOGCIn(t, 15, 35, " with a 256Mi pointer-free heap")
	runtime.KeepAlive(arena)
}
