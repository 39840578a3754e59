package compose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/units"
	"golang.org/x/sync/errgroup"
)

// ejectWatch polls the gateway pool and notes when a target of the serving
// group first stops taking traffic (unhealthy, ejected or breaker open).
type ejectWatch struct {
	mu   sync.Mutex
	at   time.Time
	stop context.CancelFunc
	done chan struct{}
}

func watchEjection(t *testing.T, e *env, switched func() time.Time) *ejectWatch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &ejectWatch{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if switched().IsZero() {
				continue
			}
			pool, err := e.p.opts.Gateway.Pool(ctx, e.p.opts.Pool)
			if err != nil {
				continue
			}
			for _, tg := range servingTargets(pool) {
				if !tg.Healthy || tg.Breaker == "open" {
					w.mu.Lock()
					if w.at.IsZero() {
						w.at = time.Now()
					}
					w.mu.Unlock()
					return
				}
			}
		}
	}()
	t.Cleanup(func() { w.stop(); <-w.done })
	return w
}

func (w *ejectWatch) when() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

// inflightAt counts the answers in progress at t.
func inflightAt(as []answer, t time.Time) int {
	n := 0
	for _, a := range as {
		if a.start.Before(t) && a.end.After(t) {
			n++
		}
	}
	return n
}

// TestIntegrationDockerFallbackToThePreviousVersion is issue 24's acceptance
// for blue/green under 150 req/s: a new version that crashes 2 s after the
// switch loses only the requests in flight on it at that moment, and one
// that starts answering 500 loses none after the gateway first stops sending
// it traffic. The previous version takes the rest as the split's fallback
// until the watch window rolls back.
func TestIntegrationDockerFallbackToThePreviousVersion(t *testing.T) {
	t.Parallel()
	loadslot.Take(t)
	c := dockerClient(t)
	v1 := fakeModelImage(t, c, "aideploy-test-model:fb-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKEN_DELAY": "20ms"})
	for _, tt := range []struct {
		name string
		env  map[string]string
	}{
		{"crash 2s after the switch", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "20ms"}},
		// One replica, fast: the breaker is per target, and a second replica
		// that starts failing later is ejected later. The "first ejection" is
		// then the version's.
		{"500 from some point after the switch", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "5ms", "FAKEMODEL_FAIL_AFTER": "8s"}},
	} {
		// One at a time: two gateways at 150 req/s each on a small host turn
		// more requests away as busy than either would alone.
		t.Run(tt.name, func(t *testing.T) {
			crash := tt.env["FAKEMODEL_FAIL_AFTER"] == ""
			e := newEnv(t, func(c *rollout.Config) { c.Watch.Window = units.Duration(20 * time.Second) })
			tag := "aideploy-test-model:fb-500"
			if crash {
				tag = "aideploy-test-model:fb-crash"
			}
			bad := fakeModelImage(t, c, tag, tt.env)
			// Two replicas a colour: one carries 150 req/s of this model only
			// with the gateway turning some away as busy, which is not what is measured.
			if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
				t.Fatalf("first deploy: %v", err)
			}
			started := time.Now() // the first deploy's switch is not the one watched
			switched := func() time.Time {
				if s := e.lastEvent(rollout.StepSwitch, rollout.EventDone); s.After(started) {
					return s
				}
				return time.Time{}
			}
			ej := watchEjection(t, e, switched)
			var crashedAt, killIssued time.Time
			var crashErr error
			killed := make(chan struct{})
			if crash {
				go func() {
					defer close(killed)
					deadline := time.Now().Add(2 * time.Minute)
					for switched().IsZero() && time.Now().Before(deadline) {
						time.Sleep(5 * time.Millisecond) // polling for the switch
					}
					time.Sleep(time.Until(switched().Add(2 * time.Second)))
					cs, err := e.p.replicas(context.Background(), 2)
					if err != nil || len(cs) == 0 {
						crashErr = errors.Join(errors.New("no replica of revision 2 to kill"), err)
						return
					}
					killIssued = time.Now()
					var kg errgroup.Group
					for _, cn := range cs {
						kg.Go(func() error { return c.ContainerKill(context.Background(), cn.ID, "KILL") })
					}
					crashErr = kg.Wait()
					crashedAt = time.Now() // SIGKILL delivered: the process is gone
				}()
			} else {
				close(killed)
			}
			l := startLoad(t, e.addr, 150)
			replicas := 2
			if !crash {
				replicas = 1
			}
			_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: bad, Replicas: replicas})
			<-killed
			as := l.finish()
			var f *rollout.Failure
			if !errors.As(err, &f) || f.Step != rollout.StepWatch || !f.RolledBack {
				t.Fatalf("rollout = %v, want a failure at the watch, rolled back", err)
			}
			if crashErr != nil {
				t.Fatalf("crashing the new version: %v", crashErr)
			}
			fails := failed(as)
			at := ej.when()
			if crash {
				at = crashedAt
			}
			if at.IsZero() {
				t.Fatal("the new version never stopped taking traffic")
			}
			// The gateway's own "busy" answers (503, saturated) are its overload
			// protection on a loaded host, before the switch as after it; they are
			// counted apart. A 503 for want of any usable target would be a loss
			// the fallback exists to prevent: the metric must show none.
			var lost, busy, late []answer
			for _, a := range fails {
				if a.status == 503 {
					busy = append(busy, a)
					continue
				}
				lost = append(lost, a)
				if !a.start.Before(at) {
					late = append(late, a)
				}
			}
			busyBefore := 0
			for _, a := range busy {
				if a.start.Before(switched()) {
					busyBefore++
				}
			}
			if n := degraded(t, e, "unavailable"); n != 0 {
				t.Errorf("%v requests were answered 503 for want of a usable target", n)
			}
			if n := degraded(t, e, "saturated"); n != float64(len(busy)) {
				t.Logf("note: %v saturated answers in the gateway's metric, %d 503s seen by clients", n, len(busy))
			}
			inflight := inflightAt(as, at)
			t.Logf("%s: %d requests; %d lost, %d in flight at the %s (%s after the switch), %d lost that started after it; %d answered busy (503 saturated; %d of them before the switch)",
				tt.name, len(as), len(lost), inflight, map[bool]string{true: "crash", false: "first ejection"}[crash],
				at.Sub(switched()).Round(time.Millisecond), len(late), len(busy), busyBefore)
			kinds := map[string]int{}
			for _, a := range fails {
				k := fmt.Sprintf("%d %.60s started %+dms", a.status, a.err, a.start.Sub(at).Milliseconds()/100*100)
				kinds[k]++
			}
			t.Logf("failures by kind: %v", kinds)
			if len(late) > 0 {
				t.Errorf("%d requests started after the %s failed; first: %+v", len(late), map[bool]string{true: "crash", false: "ejection"}[crash], late[0])
			}
			if crash {
				t.Logf("the kill was issued %s after the switch with %d requests in flight, and returned %s later",
					killIssued.Sub(switched()).Round(time.Millisecond), inflightAt(as, killIssued), crashedAt.Sub(killIssued).Round(time.Millisecond))
			}
			if crash && len(lost) > inflight {
				t.Errorf("%d requests lost, more than the %d in flight at the crash", len(lost), inflight)
			}
			if got := e.serving(); len(got) != 1 || got[0] != 1 {
				t.Errorf("serving revisions %v, want [1]", got)
			}
			pool, err := e.p.opts.Gateway.Pool(context.Background(), e.p.opts.Pool)
			if err != nil || pool.Split != nil {
				t.Errorf("after the rollback the pool keeps a split: %+v %v", pool.Split, err)
			}
		})
	}
}

// degraded reads the gateway's count of degraded answers for reason from its
// admin listener's /metrics.
func degraded(t *testing.T, e *env, reason string) float64 {
	t.Helper()
	resp, err := http.Get(e.p.opts.Gateway.(*adminapi.Client).BaseURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "ai_api_requests_total{") {
		t.Fatalf("the admin listener's /metrics has no gateway request counts:\n%.500s", b)
	}
	prefix := `ai_gateway_degraded_total{reason="` + reason + `"} `
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return 0 // never incremented
}
