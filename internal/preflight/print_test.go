package preflight

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sampleReport has one result of each status, as a GPU-less host with a misconfigured engine sees it.
func sampleReport() Report {
	return newReport([]Result{
		skipOrFail(false, "nvml.init", "host", "NVML library not found (libnvidia-ml.so.1): GPU checks skipped", "install the NVIDIA driver"),
		pass("docker.engine", "docker", "Docker 20.10.24 (API 1.41)", "API >= 1.40 (GPU device requests)"),
		fail("docker.gpu-runtime", "docker", "no GPU runtime (runtimes: runc)", "nvidia runtime, CDI spec or nvidia-container-runtime-hook",
			"install the NVIDIA Container Toolkit, then: nvidia-ctk runtime configure --runtime=docker && systemctl restart docker"),
		pass("docker.port", "port/8000", "free", "free"),
		warn("gpu.temperature", "gpu0", "87 °C", "< 90 °C (slowdown)", "the GPU is close to thermal slowdown: check cooling and airflow"),
	}, 420*time.Millisecond)
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestWriteTableGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteTable(&buf, sampleReport(), false, 0); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(buf.Bytes(), []byte("\x1b[")) {
		t.Error("plain table has escape sequences")
	}
	golden(t, "table.golden", buf.Bytes())
}

func TestWriteTableColor(t *testing.T) {
	t.Parallel()
	var plain, color bytes.Buffer
	if err := WriteTable(&plain, sampleReport(), false, TableWidth); err != nil {
		t.Fatal(err)
	}
	if err := WriteTable(&color, sampleReport(), true, TableWidth); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(color.String(), "\x1b[") {
		t.Error("colour table has no escape sequences")
	}
	stripped := ansi.ReplaceAllString(color.String(), "")
	if stripped != plain.String() {
		t.Errorf("colour changes the layout:\n%s\nvs\n%s", stripped, plain.String())
	}
	if IsTerminal(&plain) {
		t.Error("a buffer is not a terminal")
	}
}

// TestWriteJSONGolden pins the documented field names; a change here is a schema change.
func TestWriteJSONGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, sampleReport()); err != nil {
		t.Fatal(err)
	}
	golden(t, "report.golden.json", buf.Bytes())
	var back struct {
		SchemaVersion int            `json:"schemaVersion"`
		DurationMS    int64          `json:"durationMs"`
		Summary       map[string]int `json:"summary"`
		Results       []map[string]any
	}
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if back.SchemaVersion != SchemaVersion || back.DurationMS != 420 || back.Summary["fail"] != 1 || len(back.Results) != 5 {
		t.Errorf("round trip: %+v", back)
	}
}

// TestWriteTableFitsWidth: a report whose rows are wider than the terminal
// keeps every line within TableWidth and loses no text.
func TestWriteTableFitsWidth(t *testing.T) {
	t.Parallel()
	rep := sampleReport()
	rep.Results = append(rep.Results, skip("k8s.cluster", "cluster",
		"/home/someone/.kube/config: the kubeconfig file does not exist; pass --kubeconfig FILE, set KUBECONFIG, or set rollout.target: docker"))
	var buf bytes.Buffer
	if err := WriteTable(&buf, rep, false, TableWidth); err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(buf.String(), "\n") {
		if n := len([]rune(l)); n > TableWidth {
			t.Errorf("line of %d columns: %q", n, l)
		}
	}
	flat := strings.Join(strings.Fields(buf.String()), " ")
	for _, r := range rep.Results {
		parts := []string{r.Measured, r.Threshold}
		if r.Status == Warn || r.Status == Fail {
			parts = append(parts, r.Remedy)
		}
		for _, part := range parts {
			if !strings.Contains(flat, strings.Join(strings.Fields(part), " ")) {
				t.Errorf("lost %q", part)
			}
		}
	}
	golden(t, "table_narrow.golden", buf.Bytes())
}
