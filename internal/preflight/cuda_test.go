package preflight

import "testing"

func TestCheckDriver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		driver, cuda string
		want         DriverVerdict
		minimum      string
		exact        bool
	}{
		{"530.30.02", "12.1", DriverOK, "530.30.02", true},
		{"530.30.01", "12.1", DriverMinorCompat, "530.30.02", true},
		{"525.60.13", "12.4.1", DriverMinorCompat, "550.54.14", true},
		{"520.61.05", "12.0", DriverTooOld, "525.60.13", true},
		{"570.26", "12.8", DriverOK, "570.26", true},
		{"565.57.01", "12.7", DriverOK, "560.28.03", false},
		{"575.51.03", "13.0", DriverTooOld, "580.65.06", true},
		{"520.61.05", "11.8", DriverOK, "520.61.05", true},
	}
	for _, tt := range tests {
		t.Run(tt.driver+"/"+tt.cuda, func(t *testing.T) {
			t.Parallel()
			got, req, err := CheckDriver(tt.driver, tt.cuda)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || req.Minimum != tt.minimum || req.Exact != tt.exact {
				t.Errorf("got %v %+v, want %v %s exact=%v", got, req, tt.want, tt.minimum, tt.exact)
			}
		})
	}
	for _, bad := range [][2]string{{"abc", "12.1"}, {"550.54.15", "10.2"}, {"550.54.15", ""}} {
		if _, _, err := CheckDriver(bad[0], bad[1]); err == nil {
			t.Errorf("%v: want an error", bad)
		}
	}
}

func TestCUDAFromRequire(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"cuda>=12.1 brand=tesla,driver>=470,driver<471 brand=unknown,driver>=470,driver<471": "12.1",
		"cuda>=11.8":  "11.8",
		"brand=tesla": "",
		"":            "",
	}
	for in, want := range tests {
		if got := CUDAFromRequire(in); got != want {
			t.Errorf("CUDAFromRequire(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCUDAVersionFromImage(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"nvidia/cuda:12.1.0-runtime-ubuntu22.04":             "12.1",
		"nvcr.io/nvidia/cuda:12.4.1-cudnn-devel-ubuntu22.04": "12.4",
		"pytorch/pytorch:2.2.0-cuda12.1-cudnn8-runtime":      "12.1",
		"your-registry.com/ai-api:v1.2.0":                    "",
		"localhost:5000/model":                               "",
		"redis:7-alpine":                                     "",
	}
	for in, want := range tests {
		if got := CUDAVersionFromImage(in); got != want {
			t.Errorf("CUDAVersionFromImage(%q) = %q, want %q", in, got, want)
		}
	}
}
