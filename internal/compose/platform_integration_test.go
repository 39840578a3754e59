package compose

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/compose-spec/compose-go/v2/types"
)

func TestIntegrationDockerCreateHealthWarmStopRemove(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	img := fakeModelImage(t, c, "aideploy-test-model:create", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_STARTUP_DELAY": "1s"})
	p := testPlatform(t, c, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: img, Replicas: 2, ConfigHash: "abc"}

	if err := p.Check(ctx, d, nil); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if err := p.Create(ctx, d); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := p.Create(ctx, d); err != nil { // idempotent
		t.Fatalf("Create again: %v", err)
	}
	start := time.Now()
	if err := p.WaitHealthy(ctx, d, time.Minute); err != nil {
		t.Fatalf("WaitHealthy: %v", err)
	}
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("healthy after %s, before the 1s startup delay could pass", el)
	}
	w, err := p.Warmup(ctx, d)
	if err != nil {
		t.Fatalf("Warmup: %v", err)
	}
	if w.TimeToFirstToken <= 0 || w.Total < w.TimeToFirstToken {
		t.Errorf("warm-up timings %+v", w)
	}
	eps, err := p.Endpoints(ctx, d)
	if err != nil || len(eps) != 2 {
		t.Fatalf("Endpoints = %v, %v", eps, err)
	}
	for _, ep := range eps {
		if !strings.HasPrefix(ep.URL, "http://127.0.0.1:") {
			t.Errorf("endpoint %s is not on loopback", ep.URL)
		}
		resp, err := http.Get(ep.URL + "/v1/models")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if v := resp.Header.Get("X-Model-Version"); v != "v1" {
			t.Errorf("%s answers version %q", ep.Name, v)
		}
	}
	in, err := c.ContainerInspect(ctx, eps[0].Name)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{LabelColor: "blue", LabelRevision: "1", LabelImage: img, LabelConfigHash: "abc",
		"com.docker.compose.project": "aidtest", "com.docker.compose.service": p.opts.Service} {
		if in.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, in.Config.Labels[k], v)
		}
	}

	st, err := p.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Instances) != 1 || st.Instances[0].Running != 2 || st.Instances[0].Deployment != d {
		t.Errorf("Current instances = %+v", st.Instances)
	}
	if err := p.Stop(ctx, d); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if st, _ = p.Current(ctx); st.Instances[0].Running != 0 || st.Instances[0].Total != 2 {
		t.Errorf("after Stop: %+v", st.Instances)
	}
	start = time.Now()
	if err := p.Create(ctx, d); err != nil {
		t.Fatalf("Create of stopped replicas: %v", err)
	}
	if err := p.WaitHealthy(ctx, d, time.Minute); err != nil {
		t.Fatalf("WaitHealthy after restart: %v", err)
	}
	t.Logf("stopped revision serving again after %s", time.Since(start))
	if err := p.Remove(ctx, d); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if left := leftovers(t, c, p); len(left) != 0 {
		t.Errorf("containers left after Remove: %v", left)
	}
}

func TestIntegrationDockerStartupFailures(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	tests := []struct {
		name   string
		env    map[string]string
		budget time.Duration
		within time.Duration
		want   []string
	}{
		// within is far below the budget, so it proves fail-fast without
		// being a stopwatch: the measured figure (about 2s) is logged.
		{"crash at start", map[string]string{"FAKEMODEL_CRASH_AFTER": "1s", "FAKEMODEL_STARTUP_DELAY": "1h"}, 2 * time.Minute, 20 * time.Second,
			[]string{"exited with code 1", "last 50 log lines", "crash"}},
		{"health never passes", map[string]string{"FAKEMODEL_HEALTH_FAIL": "true"}, 3 * time.Second, 20 * time.Second,
			[]string{"did not pass its health check GET /health", "startup budget", "503"}},
		{"never opens its port", map[string]string{"FAKEMODEL_LISTEN": ":9999"}, 2 * time.Minute, 20 * time.Second,
			[]string{"never opened port 8000"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img := fakeModelImage(t, c, "aideploy-test-model:fail"+string(rune('a'+i)), tt.env)
			p := testPlatform(t, c, func(o *Options) { o.PortTimeout = 3 * time.Second })
			ctx := context.Background()
			d := rollout.Deployment{Color: rollout.Green, Revision: 2, Image: img, Replicas: 1}
			if err := p.Create(ctx, d); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			err := p.WaitHealthy(ctx, d, tt.budget)
			el := time.Since(start)
			if err == nil {
				t.Fatal("WaitHealthy passed")
			}
			var se *StartupError
			if !errors.As(err, &se) {
				t.Errorf("error %T is not a StartupError", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if el > tt.within {
				t.Errorf("detected after %s, want within %s", el, tt.within)
			}
			t.Logf("detected after %s", el.Round(time.Millisecond))
		})
	}
}

func TestIntegrationDockerLock(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	p := testPlatform(t, c, nil)
	ctx := context.Background()
	host, _ := os.Hostname()
	a := rollout.Holder{Owner: "ana@" + host, Host: host, PID: os.Getpid(), Since: time.Now(), Image: "m:v2", Op: rollout.OpRollout}

	// A process that has exited stands for a killed aideploy.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gone := rollout.Holder{Owner: "gone@" + host, Host: host, PID: dead.Process.Pid, Since: time.Now(), Op: rollout.OpRollout}
	other := rollout.Holder{Owner: "bo@elsewhere", Host: "elsewhere", PID: 1, Since: time.Now(), Op: rollout.OpRollout}

	if err := p.Lock(ctx, a, false); err != nil {
		t.Fatalf("first Lock: %v", err)
	}
	err := p.Lock(ctx, other, false)
	var le *rollout.LockedError
	if !errors.As(err, &le) || le.Holder.Owner != a.Owner || !strings.Contains(err.Error(), "ana@") {
		t.Fatalf("second Lock = %v, want a LockedError naming ana", err)
	}
	if err := p.Unlock(ctx, other); err == nil {
		t.Error("Unlock by a non-holder succeeded")
	}
	if err := p.Unlock(ctx, a); err != nil {
		t.Fatalf("Unlock: %v", err)
	}
	if err := p.Lock(ctx, gone, false); err != nil {
		t.Fatal(err)
	}
	h, isDead, err := p.LockHolder(ctx)
	if err != nil || h == nil || !isDead {
		t.Fatalf("LockHolder = %v, dead %v, %v; want the gone holder, dead", h, isDead, err)
	}
	if err := p.Lock(ctx, a, false); err != nil {
		t.Fatalf("Lock over a dead holder: %v", err)
	}
	if err := p.Lock(ctx, other, true); err != nil {
		t.Fatalf("Lock with force: %v", err)
	}
	if h, _, _ := p.LockHolder(ctx); h == nil || h.Owner != other.Owner {
		t.Errorf("holder after force = %v", h)
	}
}

func TestIntegrationDockerJournal(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	p := testPlatform(t, c, nil)
	ctx := context.Background()
	d1 := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "m:v1", Replicas: 1}
	j := rollout.Journal{ID: "r1", Op: rollout.OpRollout, Step: rollout.StepCreate, Status: rollout.StatusRunning, To: d1}
	for _, s := range []rollout.Step{rollout.StepCreate, rollout.StepHealthy, rollout.StepSwitch} {
		j.Step = s
		if err := p.Record(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	j2 := rollout.Journal{ID: "r2", Op: rollout.OpRollout, Step: rollout.StepCheck, Status: rollout.StatusRunning, To: d1}
	if err := p.Record(ctx, j2); err != nil {
		t.Fatal(err)
	}
	st, err := p.Current(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, x := range st.Journals {
		got = append(got, x.ID+"/"+string(x.Step))
	}
	if want := []string{"r2/check", "r1/switch"}; !reflect.DeepEqual(got, want) {
		t.Errorf("journals = %v, want %v", got, want)
	}
}

func TestIntegrationDockerCheck(t *testing.T) {
	t.Parallel()
	c := dockerClient(t)
	img := fakeModelImage(t, c, "aideploy-test-model:check", nil)
	gpu := func(o *Options) {
		o.Spec.Deploy = &types.DeployConfig{Resources: types.Resources{Reservations: &types.Resource{
			Devices: []types.DeviceRequest{{Capabilities: []string{"gpu"}, Count: 1}}}}}
		o.HostGPUs = func() int { return 2 }
	}
	tests := []struct {
		name     string
		change   func(*Options)
		image    string
		replicas int
		want     string // "" means accepted
	}{
		{"image present, no GPUs", nil, img, 2, ""},
		// Missing images are pulled; nothing listens on port 1, so this one cannot be.
		{"image missing and not pullable", nil, "127.0.0.1:1/aideploy-test-model:absent", 1, "pulling image 127.0.0.1:1/aideploy-test-model:absent from 127.0.0.1:1"},
		{"GPUs fit", gpu, img, 2, ""},
		{"GPUs do not fit", gpu, img, 3, "needs 3 (3 replica(s) × 1)"},
		{"no GPU on this host", func(o *Options) { gpu(o); o.HostGPUs = func() int { return 0 } }, img, 1, "the host has 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := testPlatform(t, c, tt.change)
			err := p.Check(context.Background(), rollout.Deployment{Color: rollout.Green, Revision: 2, Image: tt.image, Replicas: tt.replicas}, nil)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
}
