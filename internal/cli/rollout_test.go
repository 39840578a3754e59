package cli

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/compose"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/aideploy/aideploy/internal/rollout"
)

func TestRolloutFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
		check   func(*testing.T, *rolloutOptions)
	}{
		{"defaults", nil, "", func(t *testing.T, o *rolloutOptions) {
			if o.Strategy != "" || o.target.Target != "" || o.WatchWindow != nil || o.ScaleDownDelay != nil || o.DryRun {
				t.Errorf("defaults %+v", o)
			}
		}},
		{"all flags", []string{"--image", "reg.example.com:5000/llm:v2", "--replicas", "3", "--timeout", "5m", "--dry-run", "--yes",
			"--force-unlock", "--watch-window", "0s", "--scale-down-delay", "1s", "--gateway-admin", "http://127.0.0.1:9"}, "",
			func(t *testing.T, o *rolloutOptions) {
				if o.Image != "reg.example.com:5000/llm:v2" || o.Replicas != 3 || o.Timeout != 5*time.Minute || !o.DryRun || !o.Yes ||
					!o.ForceUnlock || o.WatchWindow == nil || *o.WatchWindow != 0 || *o.ScaleDownDelay != time.Second ||
					o.target.GatewayAdmin != "http://127.0.0.1:9" {
					t.Errorf("parsed %+v", o)
				}
			}},
		{"untagged image", []string{"--image", "reg.example.com:5000/llm"}, "has no tag", nil},
		{"canary", []string{"--strategy", "canary"}, "", func(t *testing.T, o *rolloutOptions) {
			c := rollout.Default()
			o.tweak(&c)
			if c.Strategy != rollout.StrategyCanary {
				t.Errorf("--strategy canary gave settings strategy %q", c.Strategy)
			}
		}},
		{"rainbow", []string{"--strategy", "rainbow"}, "use bluegreen, canary or shadow", nil},
		{"nomad", []string{"--target", "nomad"}, "use docker or k8s", nil},
		{"negative replicas", []string{"--replicas", "-1"}, "must not be negative", nil},
		{"surge", []string{"--surge", "1"}, "", func(t *testing.T, o *rolloutOptions) {
			c := rollout.Default()
			o.tweak(&c)
			if o.Surge != 1 || c.Surge != 1 {
				t.Errorf("--surge 1 parsed as %d, settings surge %d", o.Surge, c.Surge)
			}
		}},
		{"negative surge", []string{"--surge", "-1"}, "--surge (-1) must not be negative", nil},
		{"argument", []string{"v2"}, "takes no arguments", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := parseFlags(t, newCmdRollout, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			tt.check(t, got)
		})
	}
}

func events() []rollout.Event {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return []rollout.Event{
		{Time: t0, Step: rollout.StepPlan, Kind: rollout.EventInfo, Message: "rollout from blue r1 (m:v1) to green r2 (m:v2)"},
		{Time: t0, Step: rollout.StepCreate, Kind: rollout.EventStart},
		{Time: t0.Add(1500 * time.Millisecond), Step: rollout.StepCreate, Kind: rollout.EventDone, Elapsed: 1500 * time.Millisecond, Message: "2 replica(s) of m:v2"},
		{Time: t0.Add(2 * time.Second), Step: rollout.StepHealthy, Kind: rollout.EventStart},
		{Time: t0.Add(3 * time.Second), Step: rollout.StepHealthy, Kind: rollout.EventFailed, Elapsed: time.Second, Message: "x exited with code 1\nlogs"},
		{Time: t0.Add(3 * time.Second), Step: rollout.StepWatch, Kind: rollout.EventSkipped, Message: "first deploy"},
	}
}

func TestProgressPlainAndJSON(t *testing.T) {
	t.Parallel()
	io, _, out, _ := iostreams.Test()
	p := newProgress(io, "table")
	for _, e := range events() {
		p.Observe(e)
	}
	want := `03:04:05.000 plan     info    rollout from blue r1 (m:v1) to green r2 (m:v2)
03:04:05.000 create   start
03:04:06.500 create   done    1.5s 2 replica(s) of m:v2
03:04:07.000 healthy  start
03:04:08.000 healthy  failed  1s x exited with code 1
03:04:08.000 watch    skipped first deploy
`
	if out.String() != want {
		t.Errorf("plain progress:\n%s\nwant:\n%s", out, want)
	}

	io, _, out, _ = iostreams.Test()
	p = newProgress(io, "json")
	for _, e := range events() {
		p.Observe(e)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 6 || !strings.Contains(lines[2], `"step":"create","kind":"done"`) || !strings.Contains(lines[2], `"elapsedMs":1500`) {
		t.Errorf("json progress:\n%s", out)
	}
}

func TestProgressLiveView(t *testing.T) {
	t.Parallel()
	io, _, out, _ := iostreams.Test()
	io.SetTerminal(true)
	io.DisableColor()
	p := newProgress(io, "table")
	p.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 7, 400_000_000, time.UTC) }
	evs := events()
	for _, e := range evs[:4] {
		p.Observe(e)
	}
	got := strings.Join(p.view(), "\n")
	want := "  rollout from blue r1 (m:v1) to green r2 (m:v2)\n" +
		"✔ create      1.5s  2 replica(s) of m:v2\n" +
		"◌ healthy    400ms"
	if got != want {
		t.Errorf("live view:\n%s\nwant:\n%s", got, want)
	}
	if !strings.Contains(out.String(), "\x1b[2A\x1b[2K") {
		t.Errorf("live progress does not redraw over its lines: %q", out.String())
	}
}

func TestStatusView(t *testing.T) {
	t.Parallel()
	v1 := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "m:v1", Replicas: 1}
	v2 := rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "m:v2", Replicas: 2}
	st := rollout.State{
		Journals:  []rollout.Journal{{ID: "r2", Op: rollout.OpRollout, Status: rollout.StatusSucceeded, To: v2, Active: &v2}},
		Instances: []rollout.Instance{{Deployment: v2, Running: 2, Total: 2}, {Deployment: v1, Running: 0, Total: 1}},
	}
	// compose.yaml's gateway names each replica by its container name on the
	// project network; this host reaches it on a loopback port.
	eps := []compose.Endpoint{{Name: "svc-green-r2-1", URL: "http://127.0.0.1:4001", Target: "http://svc-green-r2-1:8000"},
		{Name: "svc-green-r2-2", URL: "http://127.0.0.1:4002", Target: "http://svc-green-r2-2:8000"}}
	pool := &adminapi.Pool{Name: "default", Targets: []adminapi.Target{{URL: "http://svc-green-r2-1:8000", Healthy: true, Inflight: 3}}}
	v := buildStatus("svc", st, nil, eps, []bool{true, false}, pool, nil)
	var b strings.Builder
	if err := printStatus(&b, v); err != nil {
		t.Fatal(err)
	}
	want := `svc: green serves revision 2, image m:v2, 1/2 replicas healthy

REVISION  COLOR  IMAGE  REPLICAS     STATE
2         green  m:v2   2/2 running  serving
1         blue   m:v1   0/1 running  paused, kept for rollback

REPLICA         URL                    HEALTHY  IN POOL  IN FLIGHT
svc-green-r2-1  http://127.0.0.1:4001  yes      yes      3
svc-green-r2-2  http://127.0.0.1:4002  no       no       0

gateway pool default: http://svc-green-r2-1:8000 (healthy yes, in flight 3); 0 queued
`
	if b.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestReport(t *testing.T) {
	t.Parallel()
	v2 := rollout.Deployment{Color: rollout.Green, Revision: 2, Image: "m:v2", Replicas: 1}
	v1 := rollout.Deployment{Color: rollout.Blue, Revision: 1, Image: "m:v1", Replicas: 1}
	fail := &rollout.Failure{Op: rollout.OpRollout, Step: rollout.StepHealthy, Err: errors.New("x exited with code 1"),
		To: v2, From: &v1, Active: &v1, RolledBack: true}
	tests := []struct {
		name     string
		res      rollout.Result
		err      error
		dryRun   bool
		wantCode int
		wantOut  string
		wantErr  string
	}{
		{"success", rollout.Result{Journal: rollout.Journal{Op: rollout.OpRollout, To: v2}, Warmup: rollout.WarmupResult{TimeToFirstToken: 12 * time.Millisecond}}, nil, false, 0,
			"rollout done in 3s: green r2 (m:v2) serves all traffic (warm-up time to first token 12ms)\n", ""},
		{"dry run", rollout.Result{Summary: "rollout from blue r1 (m:v1) to green r2 (m:v2)"}, nil, true, 0,
			"dry run: rollout from blue r1 (m:v1) to green r2 (m:v2); nothing was changed\n", ""},
		{"failure", rollout.Result{}, fail, false, ExitFailed, "",
			"\nrollout to green r2 (m:v2) failed at step healthy: x exited with code 1\nblue r1 (m:v1) still serves all traffic; the new colour was removed.\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, out, errOut := iostreams.Test()
			f := NewFactory(io)
			err := report(f, tt.res, tt.err, 3*time.Second, tt.dryRun)
			if code := ExitCode(io, err); code != tt.wantCode {
				t.Errorf("exit code %d, want %d", code, tt.wantCode)
			}
			if out.String() != tt.wantOut {
				t.Errorf("out %q, want %q", out.String(), tt.wantOut)
			}
			if !strings.HasPrefix(errOut.String(), tt.wantErr) {
				t.Errorf("err out %q, want it to start with %q", errOut.String(), tt.wantErr)
			}
		})
	}
}

// TestProgressHealthBudget checks that the health step's progress line (how
// many replicas are healthy and how long the startup budget still runs) shows
// on the step's own line on a terminal and as its own line in a log.
func TestProgressHealthBudget(t *testing.T) {
	t.Parallel()
	evs := events()[:4]
	evs = append(evs, rollout.Event{Time: evs[3].Time.Add(time.Second), Step: rollout.StepHealthy, Kind: rollout.EventProgress,
		Message: "2/3 healthy, 1 loading, budget 8m12s left"})

	io, _, _, _ := iostreams.Test()
	io.SetTerminal(true)
	io.DisableColor()
	p := newProgress(io, "table")
	p.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 7, 400_000_000, time.UTC) }
	for _, e := range evs {
		p.Observe(e)
	}
	got := strings.Join(p.view(), "\n")
	want := "  rollout from blue r1 (m:v1) to green r2 (m:v2)\n" +
		"✔ create      1.5s  2 replica(s) of m:v2\n" +
		"◌ healthy    400ms  2/3 healthy, 1 loading, budget 8m12s left"
	if got != want {
		t.Errorf("live view:\n%s\nwant:\n%s", got, want)
	}

	io, _, out, _ := iostreams.Test()
	p = newProgress(io, "table")
	for _, e := range evs {
		p.Observe(e)
	}
	if line := "03:04:08.000 healthy  progress 2/3 healthy, 1 loading, budget 8m12s left\n"; !strings.HasSuffix(out.String(), line) {
		t.Errorf("plain progress:\n%s\nwant it to end with:\n%s", out, line)
	}
}
