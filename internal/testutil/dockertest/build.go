package dockertest

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// Build builds the image tag from the tar build context on the engine c,
// fails the test when the engine reports an error in its output stream (a
// failed step is not an HTTP error), and removes the image when the test
// ends.
func Build(t testing.TB, c client.APIClient, tag string, buildContext io.Reader) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	resp, err := c.ImageBuild(ctx, buildContext, build.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("building image %s: %v", tag, err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("building image %s: %s", tag, out)
	}
	t.Cleanup(func() {
		_, _ = c.ImageRemove(context.Background(), tag, image.RemoveOptions{Force: true, PruneChildren: true})
	})
	return tag
}
