package gctune

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	for _, tt := range []struct {
		live, target uint64
		want         int
	}{
		{0, 256 << 20, MinPercent},         // nothing measured yet
		{40 << 20, 256 << 20, MaxPercent},  // 540 wanted, capped
		{64 << 20, 256 << 20, 300},         // the next collection at 256Mi
		{85 << 20, 256 << 20, 201},         // 201.2, rounded down
		{128 << 20, 256 << 20, MinPercent}, // half the target: the default from here on
		{200 << 20, 256 << 20, MinPercent}, // never more often than the default
		{256 << 20, 256 << 20, MinPercent}, // at the target
		{300 << 20, 256 << 20, MinPercent}, // past it
		{1, 1 << 40, MaxPercent},
	} {
		if got := Percent(tt.live, tt.target); got != tt.want {
			t.Errorf("Percent(%d, %d) = %d, want %d", tt.live, tt.target, got, tt.want)
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
	deadline := time.Now().Add(5 * time.Second)
	for gogc() != want {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d, want %d", gogc(), want)
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
	deadline := time.Now().Add(5 * time.Second)
	for p := gogc(); p < 140 || p > 170; p = gogc() {
		if time.Now().After(deadline) {
			t.Fatalf("GOGC is %d with 96Mi live against 256Mi, want about 160", p)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
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
