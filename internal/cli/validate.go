package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
)

type validateOptions struct {
	f *Factory
}

func newCmdValidate(f *Factory, runF func(context.Context, *validateOptions) error) *cobra.Command {
	opts := &validateOptions{f: f}
	return &cobra.Command{
		Use:   "validate",
		Short: "Check aideploy.yaml and report every problem with its line and field",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runValidate(cmd.Context(), opts)
		},
	}
}

func runValidate(_ context.Context, opts *validateOptions) error {
	cfg, err := opts.f.Config()
	if err != nil {
		return err
	}
	out := struct {
		File  string `json:"file"`
		Valid bool   `json:"valid"`
		Name  string `json:"name"`
		Image string `json:"image"`
	}{opts.f.ConfigPath, true, cfg.Name, cfg.Image}
	return printOutput(opts.f.IO.Out, opts.f.Output, out, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "%s is valid: service %s, image %s\n", opts.f.ConfigPath, cfg.Name, cfg.Image)
		return err
	})
}

func newCmdSchema(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema of aideploy.yaml, for editors",
		Long: `Print the JSON Schema of aideploy.yaml. Point your editor at it, e.g. with
# yaml-language-server: $schema=./aideploy.schema.json at the top of the file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.Output == "yaml" {
				y, err := yaml.JSONToYAML(config.SchemaJSON)
				if err != nil {
					return err
				}
				_, err = f.IO.Out.Write(y)
				return err
			}
			_, err := f.IO.Out.Write(config.SchemaJSON)
			return err
		},
	}
}
