package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/iostreams"
)

func TestPrewarmFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"k8s", []string{"--replicas", "10"}, ""},
		{"docker", []string{"--replicas", "4", "--target", "docker", "--gateway-admin", "http://127.0.0.1:9", "--pool", "p"}, ""},
		{"docker restore", []string{"--restore", "--target", "docker"}, ""},
		{"docker for", []string{"--replicas", "4", "--target", "docker", "--for", "2h"}, "need --target k8s"},
		{"nomad", []string{"--replicas", "4", "--target", "nomad"}, "use k8s or docker"},
		{"no replicas", []string{"--target", "docker"}, "must be at least 1"},
		{"restore and replicas", []string{"--restore", "--replicas", "3", "--target", "docker"}, "exclude each other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _, _ := iostreams.Test()
			var got *prewarmOptions
			cmd := newCmdPrewarm(NewFactory(io), func(_ context.Context, o *prewarmOptions) error { got = o; return nil })
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantErr != "" {
				var ue *UsageError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &ue) {
					t.Fatalf("error = %v, want a usage error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got == nil {
				t.Fatalf("error = %v", err)
			}
			if tt.name == "docker" && (got.target.GatewayAdmin != "http://127.0.0.1:9" || got.target.Pool != "p") {
				t.Errorf("gateway flags not parsed: %+v", got.target)
			}
		})
	}
}
