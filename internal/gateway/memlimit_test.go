package gateway

import (
	"errors"
	"os"
	"runtime/debug"
	"testing"

	"github.com/KimMachineGun/automemlimit/memlimit"
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
