package rollout

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// refusingSplit is a Splitter that cannot split in its setup, as Kubernetes
// without its gateway.
type refusingSplit struct{ *fakePlatform }

func (refusingSplit) SplitRefusal(context.Context) error {
	return errors.New("no gateway here; use --strategy bluegreen")
}

// A platform that refuses to split stops a canary before anything is created,
// saying why.
func TestSplitRefusal(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	f.strict = false
	f.deployed(blue1)
	r, _ := newRunner(f, 1)
	r.Config = canaryConfig()
	r.Platform = refusingSplit{f}
	_, err := r.Run(context.Background(), Request{Op: OpRollout, Image: "model:v2"})
	if err == nil || !strings.Contains(err.Error(), "rollout.strategy canary: no gateway here; use --strategy bluegreen") {
		t.Fatalf("Run error = %v, want the platform's refusal", err)
	}
	for _, c := range f.calls {
		if strings.HasPrefix(c, "Create") || strings.HasPrefix(c, "Join") {
			t.Errorf("the refused canary still called %s", c)
		}
	}
	st, _ := f.Current(context.Background())
	if a := st.Active(); a == nil || a.Revision != 1 {
		t.Errorf("active = %v, want revision 1", a)
	}
}
