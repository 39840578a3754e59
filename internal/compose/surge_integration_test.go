package compose

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// TestIntegrationDockerSurge fakes only the GPU accounting (a host without GPUs
// cannot attach any): 3 GPUs, 2 replicas × 1 GPU serving. Both colours at once
// would need 4, so a plain rollout is refused; --surge 1 replaces one replica at
// a time under load, never running more than 3 replicas.
func TestIntegrationDockerSurge(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	e := newEnv(t, nil)
	v1 := fakeModelImage(t, c, "aideploy-test-model:sg-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKEN_DELAY": "10ms"})
	v2 := fakeModelImage(t, c, "aideploy-test-model:sg-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "10ms", "FAKEMODEL_STARTUP_DELAY": "1s"})
	const hostGPUs = 3
	running := func(ctx context.Context, except int) (int, error) {
		cs, err := e.p.replicas(ctx, 0)
		if err != nil {
			return 0, err
		}
		n := 0
		for _, c := range cs {
			if c.State == "running" && c.Labels[LabelRevision] != strconv.Itoa(except) {
				n++
			}
		}
		return n, nil
	}
	e.p.opts.GPUs = func(ctx context.Context, except int) (int, int, int, error) {
		used, err := running(ctx, except)
		return 1, hostGPUs, used, err
	}

	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
	for _, want := range []string{"not enough free GPUs", "needs 2 (2 replica(s) × 1)", "both colours at once need 4", "the host has 3, 2 in use, 1 free", "--surge 1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("rollout without surge = %v, want a refusal containing %q", err, want)
		}
	}
	if got := e.serving(); len(got) != 1 || got[0] != 1 {
		t.Fatalf("serving revisions %v after the refusal, want [1]", got)
	}

	// Watch the number of running replicas: it stands for the GPUs in use.
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	peak := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if n, err := running(ctx, -1); err == nil {
				peak = max(peak, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	e.config.Surge, e.p.opts.Rollout.Surge = 1, 1
	l := startLoad(t, e.addr, 40)
	time.Sleep(500 * time.Millisecond)
	res, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
	time.Sleep(500 * time.Millisecond)
	as := l.finish()
	stop()
	wg.Wait()
	if err != nil {
		t.Fatalf("rollout with surge 1: %v", err)
	}
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed during the surge rollout, first: %+v", len(bad), len(as), bad[0])
	}
	if peak > hostGPUs {
		t.Errorf("%d replicas ran at once, more than the host's %d GPUs", peak, hostGPUs)
	}
	rev := res.Journal.To.Revision // the refused run used up a revision number
	if got := e.serving(); len(got) != 1 || got[0] != rev {
		t.Errorf("serving revisions %v, want [%d]", got, rev)
	}
	st, err := e.p.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := st.Instance(rev); !ok || in.Running != 2 {
		t.Errorf("revision %d runs %d replica(s), want 2", rev, in.Running)
	}
	v2s := 0
	for _, a := range as {
		if a.version == "v2" {
			v2s++
		}
	}
	t.Logf("surge 1: %d requests, 0 failed, %d answered by v2; at most %d replicas ran at once", len(as), v2s, peak)
	if v2s == 0 {
		t.Errorf("no request was answered by v2")
	}
}

// TestIntegrationDockerSurgeRollsBack: a new version that starts failing once every
// batch is in is switched back to the old one, whose stopped replicas start again.
func TestIntegrationDockerSurgeRollsBack(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	e := newEnv(t, func(c *rollout.Config) {
		c.Surge = 1
		c.Watch.Window = units.Duration(20 * time.Second)
	})
	v1 := fakeModelImage(t, c, "aideploy-test-model:sgrb-v1", map[string]string{"FAKEMODEL_VERSION": "v1"})
	bad := fakeModelImage(t, c, "aideploy-test-model:sgrb-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_FAIL_AFTER": "10s"})
	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	l := startLoad(t, e.addr, 40)
	_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: bad})
	as := l.finish()
	var f *rollout.Failure
	if !errors.As(err, &f) || !f.RolledBack || !strings.Contains(err.Error(), "still serves all traffic") {
		t.Fatalf("rollout = %v, want a failure rolled back to v1", err)
	}
	if e.lastEvent(rollout.StepCreate, rollout.EventInfo).IsZero() {
		t.Errorf("no surge batch was reported: the rollout did not replace replicas one at a time")
	}
	fails := failed(as)
	t.Logf("failed at %s; %d of %d requests failed while the watch noticed", f.Step, len(fails), len(as))
	if len(fails) > 150 {
		t.Errorf("%d of %d requests failed, want at most 150", len(fails), len(as))
	}
	st, err := e.p.Current(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if in, ok := st.Instance(1); !ok || in.Running != 2 {
		t.Errorf("revision 1 runs %d replica(s) after the rollback, want 2", in.Running)
	}
	if got := e.serving(); len(got) != 1 || got[0] != 1 {
		t.Errorf("serving revisions %v, want [1]", got)
	}
	left := leftovers(t, c, e.p)
	for _, x := range left {
		if !strings.Contains(x, "-blue-r1-") || !strings.HasSuffix(x, " running") {
			t.Errorf("containers left: %v, want only revision 1's, running", left)
			break
		}
	}
	if len(left) != 2 {
		t.Errorf("containers left: %v, want revision 1's two replicas", left)
	}
}
