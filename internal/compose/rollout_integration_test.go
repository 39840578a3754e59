package compose

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/units"
)

// env is one service with its gateway, ready for rollouts.
type env struct {
	t      testing.TB
	p      *Platform
	addr   string // gateway listen address
	admin  *adminapi.Client
	mu     sync.Mutex
	events []rollout.Event
	config rollout.Config
}

func newEnv(t testing.TB, change func(*rollout.Config)) *env {
	t.Helper()
	return newEnvWith(t, nil, change)
}

// newEnvWith is newEnv with gw applied to the gateway's configuration.
func newEnvWith(t testing.TB, gw func(*gateway.Config), change func(*rollout.Config)) *env {
	t.Helper()
	c := dockerClient(t)
	addr, admin := startTestGatewayWith(t, gw)
	e := &env{t: t, addr: addr, admin: admin}
	e.p = testPlatform(t, c, func(o *Options) {
		o.Gateway = admin
		o.Rollout.StartupBudget = units.Duration(time.Minute)
		o.Rollout.ScaleDownDelay = units.Duration(time.Second)
		o.Rollout.DrainTimeout = units.Duration(30 * time.Second)
		o.Rollout.Watch.Window = units.Duration(3 * time.Second)
		o.Rollout.Warmup.Timeout = units.Duration(10 * time.Second)
		if change != nil {
			change(&o.Rollout)
		}
		e.config = o.Rollout
	})
	return e
}

func (e *env) runner(pid int) *rollout.Runner {
	host, _ := os.Hostname()
	return &rollout.Runner{
		Platform: e.p,
		Config:   e.config,
		Holder:   rollout.Holder{Owner: "test@" + host, Host: host, PID: pid},
		Observe: func(ev rollout.Event) {
			e.mu.Lock()
			e.events = append(e.events, ev)
			e.mu.Unlock()
			e.t.Logf("%s %-8s %-7s %s %s", ev.Time.Format("15:04:05.000"), ev.Step, ev.Kind, ev.Elapsed.Round(time.Millisecond), ev.Message)
		},
	}
}

func (e *env) run(req rollout.Request) (rollout.Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return e.runner(os.Getpid()).Run(ctx, req)
}

// lastEvent returns when step last reported kind.
func (e *env) lastEvent(step rollout.Step, kind rollout.EventKind) time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.events) - 1; i >= 0; i-- {
		if e.events[i].Step == step && e.events[i].Kind == kind {
			return e.events[i].Time
		}
	}
	return time.Time{}
}

// serving returns the revisions with running replicas.
func (e *env) serving() []int {
	st, err := e.p.Current(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []int
	for _, in := range st.Instances {
		if in.Running > 0 {
			out = append(out, in.Revision)
		}
	}
	return out
}

func TestIntegrationDockerRolloutUnderLoadAndRollback(t *testing.T) {
	t.Parallel()
	loadslot.Take(t)
	e := newEnv(t, nil)
	c := dockerClient(t)
	v1 := fakeModelImage(t, c, "aideploy-test-model:ro-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKEN_DELAY": "20ms"})
	v2 := fakeModelImage(t, c, "aideploy-test-model:ro-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "20ms", "FAKEMODEL_STARTUP_DELAY": "2s"})

	if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	l := startLoad(t, e.addr, 120)
	time.Sleep(time.Second)
	res, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
	if err != nil {
		t.Fatalf("rollout to v2: %v", err)
	}
	switched := e.lastEvent(rollout.StepSwitch, rollout.EventDone)
	time.Sleep(time.Second)
	as := l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed during the rollout, first: %+v", len(bad), len(as), bad[0])
	}
	var after, afterV2, streams int
	for _, a := range as {
		if a.stream {
			streams++
		}
		if a.start.After(switched) {
			after++
			if a.version == "v2" {
				afterV2++
			}
		}
	}
	if after == 0 || afterV2 != after {
		t.Errorf("%d of %d requests sent after the switch were answered by v2", afterV2, after)
	}
	rate := float64(len(as)) / as[len(as)-1].end.Sub(as[0].start).Seconds()
	t.Logf("rollout: %d requests (%d streams) at %.0f/s, 0 failed; %d after the switch all from v2; healthy→switched %s",
		len(as), streams, rate, after, res.HealthyToSwitched.Round(time.Millisecond))
	// The rate and the switch times are figures for make bench, not assertions:
	// a timed assertion fails on a busy machine without saying anything about the code.
	if got := e.serving(); len(got) != 1 || got[0] != 2 {
		t.Errorf("serving revisions %v, want [2]", got)
	}

	// Rollback under load: the kept v1 containers start again and take all traffic.
	l = startLoad(t, e.addr, 120)
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if _, err := e.run(rollout.Request{Op: rollout.OpRollback}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	took := e.lastEvent(rollout.StepSwitch, rollout.EventDone).Sub(start)
	time.Sleep(500 * time.Millisecond)
	as = l.finish()
	if bad := failed(as); len(bad) > 0 {
		t.Errorf("%d of %d requests failed during the rollback, first: %+v", len(bad), len(as), bad[0])
	}
	t.Logf("rollback: traffic on v1 %s after the command started; %d requests, 0 failed", took.Round(time.Millisecond), len(as))
	if got := e.serving(); len(got) != 1 || got[0] != 1 {
		t.Errorf("serving revisions %v after rollback, want [1]", got)
	}
}

func TestIntegrationDockerRolloutFailuresRollBack(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	v1 := fakeModelImage(t, c, "aideploy-test-model:rb-v1", map[string]string{"FAKEMODEL_VERSION": "v1"})
	tests := []struct {
		name    string
		env     map[string]string
		change  func(*rollout.Config)
		step    rollout.Step
		want    string
		maxFail int // failed requests the watch window may need to notice
	}{
		{"health never passes", map[string]string{"FAKEMODEL_HEALTH_FAIL": "true"},
			func(c *rollout.Config) { c.StartupBudget = units.Duration(4 * time.Second) },
			rollout.StepHealthy, "did not pass its health check GET /health", 0},
		{"crash at start", map[string]string{"FAKEMODEL_CRASH_AFTER": "1s", "FAKEMODEL_STARTUP_DELAY": "1h"}, nil,
			rollout.StepHealthy, "exited with code 1", 0},
		{"warm-up fails", map[string]string{"FAKEMODEL_FAILURE_RATE": "1"}, nil,
			rollout.StepWarmup, "warm-up request POST /v1/chat/completions", 0},
		{"fails 10s after the switch", map[string]string{"FAKEMODEL_FAIL_AFTER": "12s"},
			func(c *rollout.Config) { c.Watch.Window = units.Duration(20 * time.Second) },
			rollout.StepWatch, "failed at step watch", 150},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// In each case, not around them: a parent holding the slot
			// while its parallel cases wait for a parallel test's turn
			// would hold it against tests that hold those turns.
			loadslot.Take(t)
			e := newEnv(t, tt.change)
			bad := fakeModelImage(t, c, "aideploy-test-model:rb-bad"+string(rune('a'+i)), merge(tt.env, "FAKEMODEL_VERSION", "v2"))
			if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1}); err != nil {
				t.Fatalf("first deploy: %v", err)
			}
			l := startLoad(t, e.addr, 50)
			start := time.Now()
			_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: bad})
			took := time.Since(start)
			as := l.finish()
			var f *rollout.Failure
			if !errors.As(err, &f) {
				t.Fatalf("rollout = %v, want a rollout.Failure", err)
			}
			if f.Step != tt.step || !f.RolledBack || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("failure at %s (rolled back %v), want %s with %q:\n%v", f.Step, f.RolledBack, tt.step, tt.want, err)
			}
			if !strings.Contains(err.Error(), "still serves all traffic") {
				t.Errorf("failure does not say what serves traffic:\n%v", err)
			}
			fails := failed(as)
			if len(fails) > tt.maxFail {
				t.Errorf("%d of %d requests failed, want at most %d; first: %+v", len(fails), len(as), tt.maxFail, fails[0])
			}
			t.Logf("%s: failed at %s after %s; %d of %d requests failed", tt.name, f.Step, took.Round(time.Millisecond), len(fails), len(as))
			if got := e.serving(); len(got) != 1 || got[0] != 1 {
				t.Errorf("serving revisions %v, want [1]", got)
			}
			if left := leftovers(t, c, e.p); len(left) != 1 {
				t.Errorf("containers left: %v, want only revision 1's", left)
			}
		})
	}
}

func TestIntegrationDockerConcurrentRolloutsOneRefused(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	e := newEnv(t, nil)
	v1 := fakeModelImage(t, c, "aideploy-test-model:cc-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_STARTUP_DELAY": "2s"})
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.run(rollout.Request{Op: rollout.OpRollout, Image: v1})
		}()
	}
	wg.Wait()
	var locked *rollout.LockedError
	ok, refused := 0, 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.As(err, &locked) && strings.Contains(err.Error(), "locked by test@"):
			refused++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if ok != 1 || refused != 1 {
		t.Errorf("%d succeeded and %d were refused, want 1 and 1: %v", ok, refused, errs)
	}
}

func merge(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}
