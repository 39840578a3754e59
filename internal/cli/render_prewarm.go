package cli

import (
	"path/filepath"

	"github.com/aideploy/aideploy/internal/buildinfo"
	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/render"
)

// prewarmFile is where `render prewarm` writes its CronJobs.
const prewarmFile = "k8s/prewarm.yaml"

// runRenderPrewarm writes the CronJobs of the prewarm events of aideploy.yaml.
func runRenderPrewarm(opts *renderOptions) error {
	cfg, err := opts.f.Config()
	if err != nil {
		return err
	}
	if len(cfg.Prewarm) == 0 {
		return UsageErrorf("aideploy.yaml declares no prewarm: events; add one (name, start, end, timezone, replicas) or run aideploy prewarm by hand")
	}
	image := opts.PrewarmImage
	if image == "" {
		image = "ghcr.io/aideploy/aideploy:" + buildinfo.Version
	}
	data, err := k8s.PrewarmCronJobs(cfg, image)
	if err != nil {
		return &UsageError{Err: err}
	}
	files := []render.File{{Path: prewarmFile, Data: data, Mode: 0o644}}
	if opts.Stdout {
		return printFiles(opts.f.IO.Out, files)
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Dir(opts.f.ConfigPath)
	}
	policy := overwritePolicy(overwriteGenerated)
	if opts.Force {
		policy = overwriteAll
	}
	res, err := writeFiles(dir, files, policy, nil)
	if err != nil {
		return err
	}
	return printWritten(opts.f, dir, files, res, "Rendered")
}
