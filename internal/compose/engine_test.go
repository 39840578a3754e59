package compose

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestNewDockerClientNamesAStoppedEngine: an engine that does not answer is
// found when the client is made, with the address and what to do next,
// rather than as "Cannot connect" deep inside the first command's step.
func TestNewDockerClientNamesAStoppedEngine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock") // nothing listens there
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	_, err := NewDockerClient()
	if err == nil {
		t.Fatal("no error for an engine that does not exist")
	}
	for _, want := range []string{sock, "not reachable", "systemctl start docker", "DOCKER_HOST"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
