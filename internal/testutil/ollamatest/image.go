package ollamatest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/client"

	"github.com/aideploy/aideploy/internal/testutil/dockertest"
)

// ImageHome is HOME inside the image. Ollama writes its key pair to
// $HOME/.ollama at start, so a read-only root needs a tmpfs there.
const ImageHome = "/home/ollama"

// ImagePort is the port Ollama listens on inside the image (its default).
const ImagePort = 11434

// dockerfile runs the static Ollama FROM scratch with the tiny model baked in.
// The model store is read-only: nothing to prune, nothing to pull.
const dockerfile = `FROM scratch
COPY ollama /bin/ollama
COPY models /models
ENV HOME=` + ImageHome + ` OLLAMA_MODELS=/models OLLAMA_HOST=0.0.0.0:11434 OLLAMA_NOPRUNE=1 OLLAMA_NO_CLOUD=1
EXPOSE 11434
ENTRYPOINT ["/bin/ollama"]
CMD ["serve"]
`

// Image builds a FROM-scratch image of the Ollama that hack/ollama-build.sh
// built, with the tiny model, tags it tag on the Docker engine c and removes
// it when the test ends. Under -short it skips; without the build it fails.
func Image(t testing.TB, c client.APIClient, tag string) string {
	t.Helper()
	return ImageWith(t, c, tag, ImageOptions{})
}

// ImageOptions vary an image of the tiny model.
type ImageOptions struct {
	// System is a system prompt baked into the model, as a Modelfile's
	// SYSTEM would: every chat then counts its tokens in usage.prompt_tokens,
	// so that a test tells two versions apart by their answers alone.
	System string
}

// ImageWith is Image with the model varied by opts.
func ImageWith(t testing.TB, c client.APIClient, tag string, opts ImageOptions) string {
	t.Helper()
	bin := Tool(t, "ollama")
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	if err := buildContext(&ctxTar, bin, filepath.Join(cache, "models"), opts); err != nil {
		t.Fatalf("packing the image context: %v; %s", err, BuildHint)
	}
	return dockertest.Build(t, c, tag, &ctxTar)
}

// buildContext writes the Dockerfile, the binary and the model store as a tar.
func buildContext(w io.Writer, bin, models string, opts ImageOptions) error {
	tw := tar.NewWriter(w)
	add := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := add("Dockerfile", 0o644, []byte(dockerfile)); err != nil {
		return err
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	if err := add("ollama", 0o755, b); err != nil {
		return err
	}
	err = filepath.WalkDir(models, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(models, path)
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if opts.System != "" && strings.HasPrefix(filepath.ToSlash(rel), "manifests/") {
			blob, manifest, err := withSystem(data, opts.System)
			if err != nil {
				return fmt.Errorf("adding the system prompt to %s: %w", rel, err)
			}
			if err := add("models/blobs/"+blob, 0o644, []byte(opts.System)); err != nil {
				return err
			}
			data = manifest
		}
		return add(filepath.ToSlash(filepath.Join("models", rel)), 0o644, data)
	})
	if err != nil {
		return fmt.Errorf("reading the model store %s: %w", models, err)
	}
	return tw.Close()
}

// withSystem adds a system-prompt layer to an Ollama manifest, as `ollama
// create` writes one for SYSTEM: a blob of the text, named by its digest.
func withSystem(manifest []byte, system string) (blob string, out []byte, err error) {
	var m map[string]any
	if err := json.Unmarshal(manifest, &m); err != nil {
		return "", nil, err
	}
	layers, ok := m["layers"].([]any)
	if !ok {
		return "", nil, fmt.Errorf("no layers in the manifest")
	}
	sum := sha256.Sum256([]byte(system))
	digest := "sha256:" + hex.EncodeToString(sum[:])
	m["layers"] = append(layers, map[string]any{
		"mediaType": "application/vnd.ollama.image.system", "digest": digest, "size": len(system)})
	out, err = json.Marshal(m)
	return strings.Replace(digest, ":", "-", 1), out, err
}
