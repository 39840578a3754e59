// Package buildinfo carries the version, commit and date that the Makefile and
// the release configuration stamp into the binary with -ldflags -X.
package buildinfo

import "runtime/debug"

// Set at link time: -X github.com/aideploy/aideploy/internal/buildinfo.Version=v1.2.3 and so on.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info is what `aideploy version` prints.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
}

// Get returns the stamped values, filling the commit from the Go build info when unstamped.
func Get() Info {
	info := Info{Version: Version, Commit: Commit, Date: Date}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info.GoVersion = bi.GoVersion
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && info.Commit == "":
				info.Commit = s.Value
			case s.Key == "vcs.time" && info.Date == "":
				info.Date = s.Value
			}
		}
	}
	return info
}
