package cli

import (
	"testing"
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
			got := parseFlags(t, newCmdPrewarm, tt.args, tt.wantErr)
			if got == nil {
				return
			}
			if tt.name == "docker" && (got.target.GatewayAdmin != "http://127.0.0.1:9" || got.target.Pool != "p") {
				t.Errorf("gateway flags not parsed: %+v", got.target)
			}
		})
	}
}
