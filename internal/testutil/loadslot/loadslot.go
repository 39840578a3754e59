package loadslot

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Take waits for the machine's load-test slot (an exclusive flock on a file
// in the temporary directory) and holds it until the test ends. Call it
// after t.Parallel and before the test's own deadlines start, and never in
// a test whose subtests call t.Parallel: they would wait for a turn among
// the parallel tests while it holds the slot, and the tests holding those
// turns wait for the slot.
func Take(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "aideploy-load-tests.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if w := time.Since(start); w >= time.Second {
		t.Logf("waited %s for the machine's load-test slot", w.Round(time.Second))
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
