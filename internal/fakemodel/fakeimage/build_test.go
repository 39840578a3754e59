package fakeimage

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/build"
)

// recordingBuilder keeps the build context and answers with a canned progress stream.
type recordingBuilder struct {
	files  map[string]string
	modes  map[string]int64
	opts   build.ImageBuildOptions
	output string
	err    error
}

func (b *recordingBuilder) ImageBuild(_ context.Context, r io.Reader, opts build.ImageBuildOptions) (build.ImageBuildResponse, error) {
	b.opts, b.files, b.modes = opts, map[string]string{}, map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return build.ImageBuildResponse{}, err
		}
		data, _ := io.ReadAll(tr)
		b.files[h.Name], b.modes[h.Name] = string(data), h.Mode
	}
	return build.ImageBuildResponse{Body: io.NopCloser(strings.NewReader(b.output))}, b.err
}

func TestBuildImageFromBinary(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "fakemodel")
	if err := os.WriteFile(bin, []byte("ELF"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, version, output string
		engineErr             error
		wantErr               string
	}{
		{name: "ok", version: "v2.1", output: `{"stream":"Step 1/8 : FROM scratch\n"}{"stream":"Successfully built 1\n"}`},
		{name: "failed step", version: "v1", output: `{"stream":"Step 1/8\n"}{"errorDetail":{"message":"no space"},"error":"no space"}`, wantErr: "no space"},
		{name: "engine down", version: "v1", engineErr: errors.New("connection refused"), wantErr: "is the Docker engine running"},
		{name: "bad version", version: "v1\nRUN x", wantErr: "letters, digits"},
		{name: "garbled output", version: "v1", output: `{"stream":`, wantErr: "reading the build output"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := &recordingBuilder{output: tt.output, err: tt.engineErr}
			err := BuildImageFromBinary(t.Context(), b, "fm:test", tt.version, bin)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b.opts.Tags) != 1 || b.opts.Tags[0] != "fm:test" {
				t.Errorf("tags %v, want [fm:test]", b.opts.Tags)
			}
			if b.files["fakemodel"] != "ELF" || b.modes["fakemodel"] != 0o755 {
				t.Errorf("binary in context: %q mode %o", b.files["fakemodel"], b.modes["fakemodel"])
			}
			df := b.files["Dockerfile"]
			for _, want := range []string{"FROM scratch", "ENV FAKEMODEL_VERSION=v2.1 ", "EXPOSE 8000", "USER 1000",
				`HEALTHCHECK --interval=2s --timeout=2s --retries=3 CMD ["/fakemodel","-healthcheck","http://127.0.0.1:8000/health"]`,
				`ENTRYPOINT ["/fakemodel"]`} {
				if !strings.Contains(df, want) {
					t.Errorf("Dockerfile lacks %q:\n%s", want, df)
				}
			}
		})
	}
}
