package loadslot

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// tryLock takes the slot without waiting, on a file of its own (flock locks
// per open file), and says whether it could.
func tryLock(t *testing.T) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "aideploy-load-tests.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true // closing the file lets it go
}

// While a test holds the slot nobody else gets it, in this process or
// another; when the test ends the slot is free again.
func TestTakeExcludes(t *testing.T) {
	t.Run("holder", func(t *testing.T) {
		Take(t)
		if tryLock(t) {
			t.Error("the slot was taken a second time while a test held it")
		}
	})
	if !tryLock(t) {
		t.Error("the slot stayed held after its test ended")
	}
}
