package render

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// TestDockerfileParses runs the Dockerfile through BuildKit's parser and
// instruction decoder (what `docker build` does before building), with every
// lint rule on, and checks what a production model image needs.
func TestDockerfileParses(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := loadTestConfig(t, name)
			if !cfg.Preset().Dockerfile {
				// A preset runs the server's stock image: nothing is built.
				if files := renderTest(t, name, Dockerfile); len(files) != 0 {
					t.Fatalf("%s renders %d build files; a preset builds nothing", cfg.Server, len(files))
				}
				return
			}
			data := fileData(t, renderTest(t, name, Dockerfile), "Dockerfile")
			res, err := parser.Parse(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("BuildKit cannot parse the Dockerfile: %v", err)
			}
			for _, w := range res.Warnings {
				t.Errorf("parser warning: %s", w.Short)
			}
			var lints []string
			lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, _ []parser.Range) {
				lints = append(lints, rule+": "+msg)
			}})
			stages, _, err := instructions.Parse(res.AST, lint)
			if err != nil {
				t.Fatalf("BuildKit rejects an instruction: %v", err)
			}
			if len(lints) > 0 {
				t.Errorf("BuildKit lint warnings: %v", lints)
			}
			if len(stages) != 1 {
				t.Fatalf("%d stages, want 1", len(stages))
			}
			st := stages[0]
			wantBase := "nvidia/cuda:" + cfg.Build.CUDAVersion + "-runtime-ubuntu22.04"
			if st.BaseName != wantBase {
				t.Errorf("FROM %s, want %s", st.BaseName, wantBase)
			}
			var user string
			var health *instructions.HealthCheckCommand
			var exposed []string
			var cmd *instructions.CmdCommand
			labels := map[string]string{}
			for _, c := range st.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.HealthCheckCommand:
					health = c
				case *instructions.ExposeCommand:
					exposed = append(exposed, c.Ports...)
				case *instructions.CmdCommand:
					cmd = c
				case *instructions.LabelCommand:
					for _, kv := range c.Labels {
						// Quotes are removed at build time, by variable expansion.
						v, err := strconv.Unquote(kv.Value)
						if err != nil {
							v = kv.Value
						}
						labels[kv.Key] = v
					}
				}
			}
			if user != "1000:1000" {
				t.Errorf("USER %q, want the non-root 1000:1000", user)
			}
			if health == nil {
				t.Fatal("no HEALTHCHECK")
			}
			if health.Health.StartPeriod != cfg.Startup.Budget.D() || health.Health.Interval != 30*time.Second || health.Health.Retries != 3 {
				t.Errorf("HEALTHCHECK %+v, want start period %s", health.Health, cfg.Startup.Budget)
			}
			if !strings.Contains(strings.Join(health.Health.Test, " "), fmt.Sprintf("127.0.0.1:%d%s", cfg.Port, cfg.Health.Path)) {
				t.Errorf("HEALTHCHECK tests %v, want the health path", health.Health.Test)
			}
			if !slices.Equal(exposed, []string{fmt.Sprint(cfg.Port)}) {
				t.Errorf("EXPOSE %v, want %d", exposed, cfg.Port)
			}
			if cmd == nil || cmd.PrependShell || !slices.Equal(cmd.CmdLine, cfg.Build.Command) {
				t.Errorf("CMD %+v, want exec form %v", cmd, cfg.Build.Command)
			}
			if labels["org.opencontainers.image.title"] != cfg.Name {
				t.Errorf("OCI labels %v", labels)
			}
		})
	}
}
