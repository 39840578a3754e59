package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/render"
)

type renderOptions struct {
	f      *Factory
	Kinds  []render.Kind
	Dir    string // output folder; empty means the config's folder
	Stdout bool
	Force  bool
	// PrewarmImage is the aideploy image of the CronJobs of `render prewarm`.
	PrewarmImage string
}

// renderResult is what --output json|yaml prints.
type renderResult struct {
	Dir     string        `json:"dir"`
	Files   []writtenFile `json:"files"`
	Removed []string      `json:"removed,omitempty"`
}

type writtenFile struct {
	Path  string `json:"path"`
	Bytes int    `json:"bytes"`
	Mode  string `json:"mode"`
}

func newCmdRender(f *Factory, runF func(context.Context, *renderOptions) error) *cobra.Command {
	opts := &renderOptions{f: f}
	var kinds []string
	for _, k := range render.Kinds() {
		kinds = append(kinds, string(k))
	}
	cmd := &cobra.Command{
		Use:   "render [dockerfile|compose|k8s|monitoring|nginx|all]...",
		Short: "Write the Dockerfile, compose, Kubernetes, monitoring and nginx files from aideploy.yaml",
		Long: `Render fills aideploy's templates from aideploy.yaml and writes the files a team
deploys: Dockerfile and .dockerignore, compose.yaml, k8s/, monitoring/ and nginx/.
Without an argument it renders all of them.

Files are written all or nothing: everything is rendered and staged first, then
moved into place. A file that aideploy did not generate is never overwritten
without --force. The output is the same, byte for byte, for the same aideploy.yaml.`,
		Example: `  aideploy render
  aideploy render k8s --output-dir deploy
  aideploy render k8s --stdout | kubectl apply --dry-run=server -f -
  aideploy render prewarm --stdout   # CronJobs for the prewarm: events`,
		ValidArgs: kinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 && args[0] == "prewarm" {
				return runRenderPrewarm(opts)
			}
			for _, a := range args {
				k, err := render.ParseKind(a)
				if err != nil {
					return &UsageError{Err: err}
				}
				opts.Kinds = append(opts.Kinds, k)
			}
			if opts.Stdout && cmd.Flags().Changed("output-dir") {
				return UsageErrorf("--stdout and --output-dir exclude each other; choose one")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRender(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Dir, "output-dir", "", "folder to write into (default: the folder of aideploy.yaml)")
	fl.BoolVar(&opts.Stdout, "stdout", false, "print the files instead of writing them")
	fl.BoolVar(&opts.Force, "force", false, "overwrite files that aideploy did not generate")
	fl.StringVar(&opts.PrewarmImage, "prewarm-image", "", "aideploy image the prewarm CronJobs run (default: ghcr.io/aideploy/aideploy at this version)")
	return cmd
}

func runRender(_ context.Context, opts *renderOptions) error {
	cfg, err := opts.f.Config()
	if err != nil {
		return err
	}
	dir := opts.Dir
	if dir == "" {
		dir = filepath.Dir(opts.f.ConfigPath)
	}
	files, err := renderFiles(cfg, opts.f.ConfigPath, dir, opts.Kinds)
	if err != nil {
		return err
	}
	if opts.Stdout {
		return printFiles(opts.f.IO.Out, files)
	}
	policy := overwritePolicy(overwriteGenerated)
	if opts.Force {
		policy = overwriteAll
	}
	res, err := writeFiles(dir, files, policy, render.Paths(opts.Kinds...))
	if err != nil {
		return err
	}
	return printWritten(opts.f, dir, files, res, "Rendered")
}

// renderFiles renders cfg for files that will live in dir; their headers and the
// compose bind mount name the config relative to dir.
func renderFiles(cfg *config.Config, configPath, dir string, kinds []render.Kind) ([]render.File, error) {
	files, err := render.Render(cfg, sourceName(configPath, dir), kinds...)
	if errors.Is(err, render.ErrConfig) {
		return nil, &UsageError{Err: err}
	}
	return files, err
}

// sourceName is configPath as seen from dir, slash-separated.
func sourceName(configPath, dir string) string {
	absCfg, err1 := filepath.Abs(configPath)
	absDir, err2 := filepath.Abs(dir)
	if err1 == nil && err2 == nil {
		if rel, err := filepath.Rel(absDir, absCfg); err == nil {
			return filepath.ToSlash(rel)
		}
	}
	return filepath.Base(configPath)
}

// printFiles writes files as one stream, separated like kubectl and helm do, so
// `aideploy render k8s --stdout | kubectl apply -f -` works.
func printFiles(w io.Writer, files []render.File) error {
	for i, f := range files {
		if i > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "# Source: %s\n", f.Path); err != nil {
			return err
		}
		if _, err := w.Write(f.Data); err != nil {
			return err
		}
	}
	return nil
}

func printWritten(f *Factory, dir string, files []render.File, wr writeResult, verb string) error {
	written := wr.Written
	res := renderResult{Dir: dir, Files: []writtenFile{}, Removed: wr.Removed}
	for _, fl := range files {
		if slices.Contains(written, fl.Path) {
			res.Files = append(res.Files, writtenFile{Path: fl.Path, Bytes: len(fl.Data), Mode: fmt.Sprintf("%04o", fl.Mode.Perm())})
		}
	}
	return printOutput(f.IO.Out, f.Output, res, func(w io.Writer) error {
		fmt.Fprintf(w, "%s %d files in %s:\n", verb, len(written), dir)
		for _, p := range written {
			fmt.Fprintf(w, "  %s\n", p)
		}
		for _, p := range wr.Removed {
			fmt.Fprintf(w, "Removed %s: no longer rendered from this configuration\n", p)
		}
		return nil
	})
}
