package compose

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/docker/docker/pkg/jsonmessage"
)

func TestPullErrorSaysWhatToDo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unauthorized in the stream", &jsonmessage.JSONError{Message: "unauthorized: authentication required"}, "docker login reg.example:5000"},
		{"no credentials sent", errors.New(`Head "http://reg.example:5000/v2/chat/manifests/1": no basic auth credentials`), "docker login reg.example:5000"},
		{"denied", errors.New("denied: requested access to the resource is denied"), "docker login reg.example:5000"},
		{"unknown manifest", errors.New("manifest unknown: manifest unknown"), "check the image name and tag"},
		{"not found", errors.New("manifest for reg.example:5000/chat:1 not found"), "check the image name and tag"},
		{"garbage", errors.New("invalid character 'x' looking for beginning of value"), "serves the registry API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := pullError("reg.example:5000/chat:1", "reg.example:5000", tt.err).Error()
			for _, w := range []string{"pulling image reg.example:5000/chat:1 from reg.example:5000", tt.want} {
				if !strings.Contains(got, w) {
					t.Errorf("pullError = %q, want it to say %q", got, w)
				}
			}
			msg := tt.err.Error()
			var j *jsonmessage.JSONError
			if errors.As(tt.err, &j) {
				msg = j.Message
			}
			if !strings.Contains(got, "the registry answered: "+msg) {
				t.Errorf("pullError = %q, want the registry's answer %q in it", got, msg)
			}
		})
	}
}

func TestAuthFromConfigDir(t *testing.T) {
	t.Parallel()
	dir := dockerConfig(t, map[string][2]string{"reg.example:5000": {"ci", "s3cret"}, dockerHubAuthKey: {"hub", "pw"}})
	tests := []struct{ host, user, pass string }{
		{"reg.example:5000", "ci", "s3cret"},
		{"docker.io", "hub", "pw"}, // docker login keeps Docker Hub under its old index URL
		{"other.example", "", ""},
	}
	for _, tt := range tests {
		a, err := authFromConfigDir(dir, tt.host)
		if err != nil {
			t.Fatalf("authFromConfigDir(%s): %v", tt.host, err)
		}
		if a.Username != tt.user || a.Password != tt.pass {
			t.Errorf("credentials for %s = %q/%q, want %q/%q", tt.host, a.Username, a.Password, tt.user, tt.pass)
		}
	}
}

// TestRegistriesRefuseBeforeAnyRequest: a platform that allows only some
// registries refuses the others before the engine is asked to pull (this
// platform has no Docker client: a pull would panic).
func TestRegistriesRefuseBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	p := New(nil, Options{Registries: loopbackRegistries})
	err := p.pull(context.Background(), "aideploy-test-model:v1")
	if err == nil || !strings.Contains(err.Error(), "is not pulled from docker.io") {
		t.Fatalf("pull = %v, want a refusal naming docker.io", err)
	}
	for _, host := range []string{"127.0.0.1:5000", "localhost:5000", "[::1]:5000"} {
		if err := loopbackRegistries(host); err != nil {
			t.Errorf("%s refused: %v", host, err)
		}
	}
}
