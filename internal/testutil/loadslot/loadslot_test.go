package loadslot

import (
	"sync/atomic"
	"testing"
)

// Two tests that take the slot never hold it at once, even in one process
// (each Take opens the file anew, and flock locks per open file).
func TestTakeExcludes(t *testing.T) {
	var holders, most atomic.Int32
	for range 4 {
		t.Run("holder", func(t *testing.T) {
			t.Parallel()
			Take(t)
			n := holders.Add(1)
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			t.Cleanup(func() { holders.Add(-1) })
		})
	}
	t.Cleanup(func() {
		if m := most.Load(); m != 1 {
			t.Errorf("%d tests held the slot at once, want 1", m)
		}
	})
}
