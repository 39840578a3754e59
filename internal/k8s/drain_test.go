package k8s

import (
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// TestDrainSettings: the Deployment a rollout applies pauses before SIGTERM
// and gives the longest generation its drain timeout, both from aideploy.yaml.
func TestDrainSettings(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(filepath.Join("..", "render", "testdata", "gpu1", "aideploy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name         string
		pause, drain time.Duration
		grace        int64
	}{
		{"defaults", cfg.Rollout.PreStopDelay.D(), cfg.Rollout.DrainTimeout.D(), 310},
		{"long generations", 5 * time.Second, 20 * time.Minute, 1205},
		{"no pause", 0, time.Minute, 60},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := *cfg
			c.Rollout.PreStopDelay, c.Rollout.DrainTimeout = units.Duration(tt.pause), units.Duration(tt.drain)
			objs, err := Manifests(&c, "aideploy.yaml", rollout.Blue)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range objs {
				if o.GetKind() != "Deployment" {
					continue
				}
				var d appsv1.Deployment
				if err := runtimeFromUnstructured(o, &d); err != nil {
					t.Fatal(err)
				}
				spec := d.Spec.Template.Spec
				if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds != tt.grace {
					t.Errorf("grace %v, want %d", spec.TerminationGracePeriodSeconds, tt.grace)
				}
				lc := spec.Containers[0].Lifecycle
				switch {
				case tt.pause == 0 && lc != nil && lc.PreStop != nil:
					t.Errorf("preStop %+v without a pause", lc.PreStop)
				case tt.pause > 0 && (lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil || lc.PreStop.Sleep.Seconds != int64(tt.pause.Seconds())):
					t.Errorf("preStop %+v, want a sleep of %s", lc, tt.pause)
				}
				return
			}
			t.Fatal("no Deployment rendered")
		})
	}
}
