package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/aideploy/aideploy/internal/buildinfo"
	"github.com/spf13/cobra"
)

type versionOptions struct {
	f *Factory
}

func newCmdVersion(f *Factory, runF func(context.Context, *versionOptions) error) *cobra.Command {
	opts := &versionOptions{f: f}
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and build date",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runVersion(cmd.Context(), opts)
		},
	}
}

func runVersion(_ context.Context, opts *versionOptions) error {
	info := buildinfo.Get()
	return printOutput(opts.f.IO.Out, opts.f.Output, info, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, versionLine(info))
		return err
	})
}

// versionLine is what `aideploy version` and `aideploy --version` print.
func versionLine(info buildinfo.Info) string {
	return fmt.Sprintf("aideploy %s (commit %s, built %s, %s)", info.Version, orUnknown(info.Commit), orUnknown(info.Date), info.GoVersion)
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
