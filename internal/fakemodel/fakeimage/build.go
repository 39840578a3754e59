package fakeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"

	"github.com/docker/docker/api/types/build"
)

// Port is the container port the image's server listens on and exposes.
const Port = 8000

// Package is the import path of the fake model binary that BuildBinary compiles.
const Package = "github.com/aideploy/aideploy/cmd/fakemodel"

// ImageBuilder is the part of the Docker client that builds images; *client.Client has it.
type ImageBuilder interface {
	ImageBuild(ctx context.Context, buildContext io.Reader, options build.ImageBuildOptions) (build.ImageBuildResponse, error)
}

var versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// BuildImage compiles the fake model statically from the module that contains the working
// directory and builds the image tag around it, its answers carrying version.
func BuildImage(ctx context.Context, docker ImageBuilder, tag, version string) error {
	dir, err := os.MkdirTemp("", "fakemodel-image-")
	if err != nil {
		return fmt.Errorf("making a build directory: %w", err)
	}
	defer os.RemoveAll(dir)
	bin, err := BuildBinary(ctx, dir)
	if err != nil {
		return err
	}
	return BuildImageFromBinary(ctx, docker, tag, version, bin)
}

// BuildBinary compiles the fake model for linux with CGO off (so it runs FROM scratch) into dir
// and returns its path. The working directory must be inside the aideploy module.
func BuildBinary(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("finding the aideploy module (go env GOMOD = %q, %v): run from inside the module, "+
			"or build the binary with CGO_ENABLED=0 go build ./cmd/fakemodel and use BuildImageFromBinary", gomod, err)
	}
	bin := filepath.Join(dir, "fakemodel")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, Package)
	cmd.Dir = filepath.Dir(gomod)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("compiling %s: %w\n%s", Package, err, out)
	}
	return bin, nil
}

// Dockerfile returns the image recipe: the binary alone, run as user 1000, with the version in
// FAKEMODEL_VERSION and a health check by the binary itself (scratch has no curl).
func Dockerfile(version string) string {
	return fmt.Sprintf(`FROM scratch
COPY fakemodel /fakemodel
ENV FAKEMODEL_VERSION=%s FAKEMODEL_LISTEN=:%d
LABEL org.opencontainers.image.title="aideploy fake model" org.opencontainers.image.version=%q
EXPOSE %d
USER 1000:1000
HEALTHCHECK --interval=2s --timeout=2s --retries=3 CMD ["/fakemodel","-healthcheck","http://127.0.0.1:%d/health"]
ENTRYPOINT ["/fakemodel"]
`, version, Port, version, Port, Port)
}

// BuildImageFromBinary builds the image tag around an already compiled static binary.
func BuildImageFromBinary(ctx context.Context, docker ImageBuilder, tag, version, binary string) error {
	if !versionRE.MatchString(version) {
		return fmt.Errorf("version %q: use letters, digits, '.', '_', '+' and '-' only", version)
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("reading the fake model binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(Dockerfile(version))}, {"fakemodel", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data))}); err != nil {
			return fmt.Errorf("packing %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return fmt.Errorf("packing %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("packing the build context: %w", err)
	}
	resp, err := docker.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{tag}, Dockerfile: "Dockerfile", Remove: true, ForceRemove: true, Version: build.BuilderV1,
	})
	if err != nil {
		return fmt.Errorf("building image %s: %w; is the Docker engine running?", tag, err)
	}
	defer resp.Body.Close()
	return readBuildOutput(resp.Body, tag)
}

// readBuildOutput drains the engine's JSON progress stream, which reports a failed step as
// an error message in the stream rather than as an HTTP error.
func readBuildOutput(r io.Reader, tag string) error {
	dec := json.NewDecoder(r)
	var log strings.Builder
	for {
		var msg struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&msg); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading the build output of %s: %w", tag, err)
		}
		log.WriteString(msg.Stream)
		if msg.Error != "" || msg.ErrorDetail.Message != "" {
			return fmt.Errorf("building image %s: %s %s\n%s", tag, msg.Error, msg.ErrorDetail.Message, log.String())
		}
	}
}
