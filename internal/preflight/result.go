package preflight

import (
	"encoding/json"
	"fmt"
	"time"
)

// SchemaVersion is the version of the JSON report; it changes only when a field is
// removed or changes meaning.
const SchemaVersion = 1

// Status is the outcome of one check.
type Status string

// Check outcomes. A skip says why the check could not apply (no GPU, no cluster).
const (
	Pass Status = "pass"
	Warn Status = "warn"
	Fail Status = "fail"
	Skip Status = "skip"
)

// Result is the finding of one check about one subject.
type Result struct {
	// ID names the check ("gpu.memory", "docker.runtime", "lint.startup-probe").
	ID string `json:"id"`
	// Subject is what was checked: "host", "gpu0", "docker", "node/a", a manifest path.
	Subject string `json:"subject"`
	// Status is pass, warn, fail or skip.
	Status Status `json:"status"`
	// Measured is what the check found, or why it was skipped.
	Measured string `json:"measured"`
	// Threshold is what the deployment needs; empty when the check has none.
	Threshold string `json:"threshold,omitempty"`
	// Remedy says what to do; set for warn and fail, sometimes for skip.
	Remedy string `json:"remedy,omitempty"`
}

// Report is the outcome of a preflight run. Its JSON form (WriteJSON) is
//
//	{
//	  "schemaVersion": 1,
//	  "results": [
//	    {"id": "docker.gpu-runtime", "subject": "docker", "status": "fail",
//	     "measured": "no GPU runtime (runtimes: runc)",
//	     "threshold": "nvidia runtime, CDI spec or nvidia-container-runtime-hook",
//	     "remedy": "install the NVIDIA Container Toolkit, ..."}
//	  ],
//	  "summary": {"pass": 0, "warn": 0, "fail": 1, "skip": 0},
//	  "durationMs": 412
//	}
//
// threshold and remedy are left out when empty. Within a schema version fields are
// only added, never renamed or removed; status is one of pass, warn, fail, skip.
type Report struct {
	// SchemaVersion is SchemaVersion.
	SchemaVersion int `json:"schemaVersion"`
	// Results are in a stable order: by group (gpu, docker, kubernetes, lint), then by check.
	Results []Result `json:"results"`
	// Summary counts the results per status.
	Summary Summary `json:"summary"`
	// Duration is how long the run took.
	Duration time.Duration `json:"-"`
}

// Summary counts results per status.
type Summary struct {
	Pass int `json:"pass"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
	Skip int `json:"skip"`
}

// MarshalJSON adds durationMs, so the field is a plain number in the JSON.
func (r Report) MarshalJSON() ([]byte, error) {
	type plain Report
	return json.Marshal(struct {
		plain
		DurationMS int64 `json:"durationMs"`
	}{plain(r), r.Duration.Milliseconds()})
}

// Failed says whether the run should exit non-zero: a failed check, or with strict a warning.
func (r Report) Failed(strict bool) bool {
	for _, res := range r.Results {
		if res.Status == Fail || (strict && res.Status == Warn) {
			return true
		}
	}
	return false
}

func newReport(results []Result, d time.Duration) Report {
	rep := Report{SchemaVersion: SchemaVersion, Results: results, Duration: d}
	if rep.Results == nil {
		rep.Results = []Result{}
	}
	for _, r := range results {
		switch r.Status {
		case Pass:
			rep.Summary.Pass++
		case Warn:
			rep.Summary.Warn++
		case Fail:
			rep.Summary.Fail++
		case Skip:
			rep.Summary.Skip++
		}
	}
	return rep
}

// result builders keep the check code short.
func pass(id, subject, measured, threshold string) Result {
	return Result{ID: id, Subject: subject, Status: Pass, Measured: measured, Threshold: threshold}
}

func warn(id, subject, measured, threshold, remedy string) Result {
	return Result{ID: id, Subject: subject, Status: Warn, Measured: measured, Threshold: threshold, Remedy: remedy}
}

func fail(id, subject, measured, threshold, remedy string) Result {
	return Result{ID: id, Subject: subject, Status: Fail, Measured: measured, Threshold: threshold, Remedy: remedy}
}

func skip(id, subject, reason string) Result {
	return Result{ID: id, Subject: subject, Status: Skip, Measured: reason}
}

// failOrWarn is fail when hard, else warn.
func failOrWarn(hard bool, id, subject, measured, threshold, remedy string) Result {
	if hard {
		return fail(id, subject, measured, threshold, remedy)
	}
	return warn(id, subject, measured, threshold, remedy)
}

// skipOrFail is a skip, or a fail when the subject was required.
func skipOrFail(required bool, id, subject, reason, remedy string) Result {
	if required {
		return fail(id, subject, reason, "", remedy)
	}
	r := skip(id, subject, reason)
	r.Remedy = remedy
	return r
}

func (s Summary) String() string {
	warnings := "warnings"
	if s.Warn == 1 {
		warnings = "warning"
	}
	return fmt.Sprintf("%d passed, %d %s, %d failed, %d skipped", s.Pass, s.Warn, warnings, s.Fail, s.Skip)
}
