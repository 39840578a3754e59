package gateway

import (
	"errors"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"

	"github.com/aideploy/aideploy/internal/gateway/cache"
)

// unsetenv removes name for the test: automemlimit treats a variable that
// is present but empty as set.
func unsetenv(t *testing.T, name string) {
	t.Helper()
	if old, ok := os.LookupEnv(name); ok {
		t.Cleanup(func() { os.Setenv(name, old) })
	}
	os.Unsetenv(name)
}

func TestMemoryLimitFromTheContainer(t *testing.T) {
	unsetenv(t, "GOMEMLIMIT")
	unsetenv(t, "AUTOMEMLIMIT")
	before := debug.SetMemoryLimit(-1)

	ratio := 0.9
	limit, restore, err := MemoryLimit(memlimit.Limit(1<<30), ratio)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(float64(1<<30) * ratio); limit != want || debug.SetMemoryLimit(-1) != want {
		t.Errorf("limit = %d, runtime has %d, want %d", limit, debug.SetMemoryLimit(-1), want)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("after restore the limit is %d, want %d", got, before)
	}

	// No limit on the container: none set.
	noLimit := func() (uint64, error) { return 0, memlimit.ErrNoLimit }
	if limit, restore, err := MemoryLimit(noLimit, 0.9); err != nil || limit != 0 {
		t.Errorf("without a container limit: (%d, %v), want (0, nil)", limit, err)
	} else {
		restore()
	}

	// A limit that cannot be read is reported and changes nothing.
	broken := func() (uint64, error) { return 0, errors.New("no cgroup here") }
	if _, restore, err := MemoryLimit(broken, 0.9); err == nil {
		t.Errorf("an unreadable limit was not reported")
	} else {
		restore()
	}
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("the limit changed to %d", got)
	}
}

func TestMemoryLimitOperatorWins(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	for _, env := range [][2]string{{"GOMEMLIMIT", "300MiB"}, {"AUTOMEMLIMIT", "off"}} {
		unsetenv(t, "GOMEMLIMIT")
		unsetenv(t, "AUTOMEMLIMIT")
		t.Setenv(env[0], env[1])
		_, restore, err := MemoryLimit(memlimit.Limit(1<<30), 0.9)
		if err != nil {
			t.Fatal(err)
		}
		if got := debug.SetMemoryLimit(-1); got != before {
			t.Errorf("with %s=%s the limit changed to %d", env[0], env[1], got)
		}
		restore()
	}
}

// TestGCPercentFollowsTheL1: the collector runs after about 32 MiB of new
// allocation whatever the L1's size, and GOGC in the environment wins.
func TestGCPercentFollowsTheL1(t *testing.T) {
	env := map[string]string{}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		name string
		c    cache.Config
		want int
	}{
		{"default L1 of 256 MiB", cache.Config{Enabled: true, L1MaxBytes: 256 << 20}, 11},
		{"a small L1", cache.Config{Enabled: true, L1MaxBytes: 16 << 20}, 100},
		{"a 4 GiB L1 keeps a floor", cache.Config{Enabled: true, L1MaxBytes: 4 << 30}, 10},
		{"cache off", cache.Config{Enabled: false, L1MaxBytes: 256 << 20}, 100},
	}
	for _, tt := range tests {
		got, restore := GCPercent(tt.c, getenv)
		now := debug.SetGCPercent(-1)
		debug.SetGCPercent(now)
		restore()
		if got != tt.want || now != tt.want {
			t.Errorf("%s: GCPercent = %d, in force %d; want %d", tt.name, got, now, tt.want)
		}
	}
	env["GOGC"] = "200"
	before := debug.SetGCPercent(-1)
	debug.SetGCPercent(before)
	got, restore := GCPercent(cache.Config{Enabled: true, L1MaxBytes: 256 << 20}, getenv)
	restore()
	if after := debug.SetGCPercent(before); got != -2 || after != before {
		t.Errorf("with GOGC set: %d, and the percent changed from %d to %d", got, before, after)
	}
}
