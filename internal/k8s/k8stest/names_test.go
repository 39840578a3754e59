package k8stest

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func TestNamespacePrefix(t *testing.T) {
	t.Parallel()
	tests := []struct {
		test string
		want string
	}{
		{"TestIntegrationRollout", "t-integrationrollout-"},
		{"TestIntegrationRollout/crash_loop", "t-integrationrollout-crash-loop-"},
		{"TestX/Ünïcode  and spaces", "t-x-n-code-and-spaces-"},
		{"Test" + strings.Repeat("a", 39) + "/b", "t-" + strings.Repeat("a", 39) + "-"},
		{"Test" + strings.Repeat("a", 45), "t-" + strings.Repeat("a", 40) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			t.Parallel()
			got := namespacePrefix(tt.test)
			if got != tt.want {
				t.Errorf("namespacePrefix(%q) = %q, want %q", tt.test, got, tt.want)
			}
			if errs := validation.IsDNS1123Label(got + "abcde"); len(errs) > 0 {
				t.Errorf("%q is no namespace name: %v", got+"abcde", errs)
			}
		})
	}
}
