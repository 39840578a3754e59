package preflight

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// version is a dotted numeric version such as 550.54.15 or 12.4.
type version []int

func parseVersion(s string) (version, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("empty version")
	}
	parts := strings.Split(s, ".")
	v := make(version, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a version like 12.4 or 550.54.15", s)
		}
		v[i] = n
	}
	return v, nil
}

// compare returns -1, 0 or 1; missing parts count as zero.
func (v version) compare(o version) int {
	for i := range max(len(v), len(o)) {
		a, b := at(v, i), at(o, i)
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	return 0
}

func at(v version, i int) int {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// cudaMinDriver is the minimum Linux driver per CUDA toolkit version (NVIDIA's CUDA release notes).
var cudaMinDriver = []struct{ cuda, driver string }{
	{"11.8", "520.61.05"},
	{"12.0", "525.60.13"},
	{"12.1", "530.30.02"},
	{"12.2", "535.54.03"},
	{"12.3", "545.23.06"},
	{"12.4", "550.54.14"},
	{"12.5", "555.42.02"},
	{"12.6", "560.28.03"},
	{"12.8", "570.26"},
	{"12.9", "575.51.03"},
	{"13.0", "580.65.06"},
}

// minorCompatDriver is the oldest driver a CUDA major version runs on with minor-version
// compatibility (limited features: no PTX JIT of newer code).
var minorCompatDriver = map[int]string{11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}

// DriverRequirement is what a CUDA version asks of the host driver.
type DriverRequirement struct {
	// Minimum is the driver with full support of the CUDA version.
	Minimum string
	// MinorCompat is the oldest driver that runs it with minor-version compatibility.
	MinorCompat string
	// Exact is false when the CUDA version is not in the table and a nearby entry was used.
	Exact bool
}

// MinDriverForCUDA looks up the minimum Linux driver for a CUDA version ("12.1", "12.1.0").
func MinDriverForCUDA(cuda string) (DriverRequirement, error) {
	want, err := parseVersion(cuda)
	if err != nil {
		return DriverRequirement{}, fmt.Errorf("cuda version: %w", err)
	}
	want = want[:min(len(want), 2)]
	var req DriverRequirement
	for _, e := range cudaMinDriver {
		v, _ := parseVersion(e.cuda)
		if v.compare(want) > 0 {
			break
		}
		req = DriverRequirement{Minimum: e.driver, Exact: v.compare(want) == 0}
	}
	if req.Minimum == "" {
		return DriverRequirement{}, fmt.Errorf("cuda %s is older than the driver table (11.8)", cuda)
	}
	req.MinorCompat = minorCompatDriver[want[0]]
	if req.MinorCompat == "" {
		req.MinorCompat = req.Minimum
	}
	return req, nil
}

// DriverVerdict compares a host driver with what a CUDA version needs.
type DriverVerdict int

// Driver verdicts, from best to worst.
const (
	DriverOK DriverVerdict = iota
	DriverMinorCompat
	DriverTooOld
)

// CheckDriver says whether driver runs CUDA version cuda.
func CheckDriver(driver, cuda string) (DriverVerdict, DriverRequirement, error) {
	req, err := MinDriverForCUDA(cuda)
	if err != nil {
		return DriverTooOld, req, err
	}
	have, err := parseVersion(driver)
	if err != nil {
		return DriverTooOld, req, fmt.Errorf("driver version: %w", err)
	}
	minimum, _ := parseVersion(req.Minimum)
	compat, _ := parseVersion(req.MinorCompat)
	switch {
	case have.compare(minimum) >= 0:
		return DriverOK, req, nil
	case have.compare(compat) >= 0:
		return DriverMinorCompat, req, nil
	}
	return DriverTooOld, req, nil
}

var requireCUDA = regexp.MustCompile(`(?:^|\s)cuda>=([0-9]+\.[0-9]+)`)

// CUDAFromRequire reads the CUDA version from an image's NVIDIA_REQUIRE_CUDA value
// ("cuda>=12.1 brand=tesla,driver>=470,driver<471"); empty when it names none.
func CUDAFromRequire(value string) string {
	m := requireCUDA.FindStringSubmatch(value)
	if m == nil {
		return ""
	}
	return m[1]
}

var cudaTag = regexp.MustCompile(`(?:^|[:-])(?:cuda-?)?([0-9]+\.[0-9]+)(?:\.[0-9]+)?-(?:base|runtime|devel|cudnn)`)

// CUDAVersionFromImage guesses the CUDA version from an nvidia/cuda-style tag
// ("nvidia/cuda:12.1.0-runtime-ubuntu22.04" gives "12.1"); empty when the tag says nothing.
func CUDAVersionFromImage(ref string) string {
	tag := ref
	if i := strings.LastIndex(ref, ":"); i >= 0 && !strings.Contains(ref[i:], "/") {
		tag = ref[i:]
	} else {
		return ""
	}
	m := cudaTag.FindStringSubmatch(tag)
	if m == nil {
		return ""
	}
	return m[1]
}

// cudaFromDriverInt turns NVML's CUDA driver version (12040) into "12.4".
func cudaFromDriverInt(v int) string {
	return fmt.Sprintf("%d.%d", v/1000, v%1000/10)
}
