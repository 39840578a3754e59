//go:build !linux || !cgo

package preflight

import (
	"context"
	"strings"
	"testing"
)

func TestNVMLStub(t *testing.T) {
	t.Parallel()
	for _, required := range []bool{false, true} {
		rep, err := Run(context.Background(), Options{Run: Groups{GPU: true}, Require: Groups{GPU: required}})
		if err != nil {
			t.Fatal(err)
		}
		want := Skip
		if required {
			want = Fail
		}
		if len(rep.Results) != 1 || rep.Results[0].Status != want || !strings.Contains(rep.Results[0].Measured, "NVML unavailable") {
			t.Errorf("required=%v: %+v", required, rep.Results)
		}
	}
	if _, err := NewGPUCollector(nil); err == nil {
		t.Error("the stub collector must say NVML is unavailable")
	}
	if _, err := hostDriverVersion(nil); err == nil {
		t.Error("the stub has no driver version")
	}
}
