package gateway

import (
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/cache"
)

func TestMemoryFix(t *testing.T) {
	c := cache.Default() // a 256Mi L1
	for _, tt := range []struct {
		limit   int64
		enabled bool
		want    string // "" for no warning, else a piece of the fix
	}{
		{0, true, ""},              // no container limit
		{460 << 20, true, ""},      // 256Mi + 200Mi fit under 460Mi
		{270 << 20, true, "507Mi"}, // a 300m container: (256Mi + 200Mi) / 0.9, in whole MiB
		{270 << 20, false, ""},     // no cache, no L1 to fit
	} {
		c.Enabled = tt.enabled
		got := memoryFix(c, tt.limit)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("memoryFix(enabled %v, limit %d) = %q, want %q", tt.enabled, tt.limit, got, tt.want)
		}
	}
}
