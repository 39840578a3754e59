package k8s_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// The manifests of each server preset pass a server dry run in their
// blue/green form: the Deployment with the server's args, probes and volumes,
// and the model's claim where one is rendered. The claim keeps its name in
// every colour, so both colours share the downloaded model.
func TestIntegrationK8sPresetsDryRun(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		claim string // the rendered PersistentVolumeClaim; empty when none is
	}{
		{"vllm", "qwen-models"},
		{"tgi", ""}, // model.volume emptyDir
		{"ollama", "tiny-models"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := golden(t, tt.name)
			_, kc := start(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			objs, err := k8s.Manifests(cfg, "aideploy.yaml", rollout.Green)
			if err != nil {
				t.Fatal(err)
			}
			changes, err := kc.Apply(ctx, objs, true)
			if err != nil {
				t.Fatalf("server dry run of the %s preset: %v", cfg.Server, err)
			}
			var applied []string
			for _, c := range changes {
				applied = append(applied, c.Kind+"/"+c.Name)
			}
			if !slices.Contains(applied, "Deployment/"+cfg.Name+"-green") {
				t.Errorf("applied %v, no Deployment %s-green", applied, cfg.Name)
			}
			claims := slices.DeleteFunc(slices.Clone(applied), func(s string) bool { return !strings.HasPrefix(s, "PersistentVolumeClaim/") })
			if want := []string{"PersistentVolumeClaim/" + tt.claim}; tt.claim != "" && !slices.Equal(claims, want) || tt.claim == "" && len(claims) != 0 {
				t.Errorf("applied claims %v, want %q", claims, tt.claim)
			}
		})
	}
}
