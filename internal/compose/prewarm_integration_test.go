package compose

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
)

func TestIntegrationDockerPrewarm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Docker containers and a gateway; skipped with -short")
	}
	t.Parallel()
	c := dockerClient(t)
	e := newEnv(t, nil)
	gw := e.p.opts.Gateway
	pool := e.p.opts.Pool
	host, _ := os.Hostname()
	h := rollout.Holder{Owner: "test@" + host, Host: host, PID: os.Getpid()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	if _, err := e.p.Prewarm(ctx, h, 4, time.Minute); !errors.Is(err, ErrNothingDeployed) {
		t.Fatalf("prewarm before any deploy: %v, want ErrNothingDeployed", err)
	}
	v1 := fakeModelImage(t, c, "aideploy-test-model:pw-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKEN_DELAY": "20ms", "FAKEMODEL_STARTUP_DELAY": "1s"})
	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	healthyTargets := func() (all, healthy int) {
		t.Helper()
		p, err := gw.Pool(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range p.Targets {
			if x.Draining {
				continue
			}
			all++
			if x.Healthy {
				healthy++
			}
		}
		return all, healthy
	}

	// Prewarm 2 → 4 under load: nothing fails and, once added, every replica takes traffic.
	l := startLoad(t, e.addr, 40)
	time.Sleep(500 * time.Millisecond)
	res, err := e.p.Prewarm(ctx, h, 4, time.Minute)
	if err != nil {
		t.Fatalf("prewarm to 4: %v", err)
	}
	added := time.Now()
	t.Logf("prewarm: %+v", res)
	if res.Original != 2 || res.Replicas != 4 || len(res.Added) != 2 || res.PoolTargets != 4 {
		t.Errorf("prewarm result %+v, want original 2, replicas 4, 2 added, 4 pool targets", res)
	}
	if got := leftovers(t, c, e.p); len(got) != 4 {
		t.Errorf("containers after prewarm %v, want 4", got)
	}
	if all, healthy := healthyTargets(); all != 4 || healthy != 4 {
		t.Errorf("pool has %d targets, %d healthy; want 4 and 4", all, healthy)
	}
	time.Sleep(2 * time.Second)
	as := l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed during the prewarm, first: %+v", len(bad), len(as), bad[0])
	}
	stats, err := gw.Stats(ctx, pool, time.Since(added).Round(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	reached := 0
	for _, s := range stats.ByTarget {
		if s.Requests > 0 {
			reached++
		}
	}
	t.Logf("prewarm under load: %d requests, 0 failed; after the swap %d reached %d targets", len(as), stats.Requests, reached)
	if reached != 4 {
		t.Errorf("traffic after the prewarm reached %d targets, want 4: %+v", reached, stats.ByTarget)
	}
	if st, _ := e.p.Current(ctx); len(st.Instances) != 1 || st.Instances[0].Running != 4 || st.Active().Revision != 1 {
		t.Errorf("state after prewarm: %+v active %v, want revision 1 with 4 running", st.Instances, st.Active())
	}
	if res, err := e.p.Prewarm(ctx, h, 4, time.Minute); err != nil || len(res.Added) != 0 || res.Replicas != 4 {
		t.Errorf("prewarm to 4 again: %+v, %v; want nothing added", res, err)
	}

	// Restore under light load: back to the deployed 2, nothing fails.
	l = startLoad(t, e.addr, 20)
	time.Sleep(500 * time.Millisecond)
	res, err = e.p.Restore(ctx, h)
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	time.Sleep(500 * time.Millisecond)
	as = l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed during the restore, first: %+v", len(bad), len(as), bad[0])
	}
	t.Logf("restore: %+v; %d requests under load, 0 failed", res, len(as))
	if len(res.Removed) != 2 || res.Replicas != 2 || res.PoolTargets != 2 {
		t.Errorf("restore result %+v, want 2 removed, 2 replicas, 2 pool targets", res)
	}
	if got := leftovers(t, c, e.p); len(got) != 2 {
		t.Errorf("containers after restore %v, want 2", got)
	}
	if all, healthy := healthyTargets(); all != 2 || healthy != 2 {
		t.Errorf("pool has %d targets, %d healthy after restore; want 2 and 2", all, healthy)
	}

	// Restore again: a no-op.
	res, err = e.p.Restore(ctx, h)
	if err != nil || len(res.Removed) != 0 || res.PoolTargets != 2 {
		t.Errorf("second restore: %+v, %v; want nothing removed", res, err)
	}
	if got := leftovers(t, c, e.p); len(got) != 2 {
		t.Errorf("containers after the second restore %v, want 2", got)
	}
}
