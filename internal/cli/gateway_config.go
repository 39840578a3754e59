package cli

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/gateway"
)

func newCmdGatewayConfig(f *Factory, runF func(context.Context, *gatewayServeOptions) error) *cobra.Command {
	opts := &gatewayServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the settings gateway serve would run with: the file, the flags and every default",
		Long: `Print the gateway settings that gateway serve would run with, given the same
--config file and flags: the file's gateway section, the flags over it, and
every default filled in. The output is a gateway: section that can be pasted
into aideploy.yaml as a starting point (-o json prints the same as JSON).
Invalid settings are reported as serve reports them, each with its field.
A password in the Redis URL is printed as xxxxx.`,
		Example: `  aideploy gateway config
  aideploy gateway config --upstream http://127.0.0.1:8000 -o json | jq .gateway.cache`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runGatewayConfig(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

// gatewaySection is the printed form: the key it has in aideploy.yaml.
type gatewaySection struct {
	Gateway gateway.Config `json:"gateway"`
}

func runGatewayConfig(_ context.Context, opts *gatewayServeOptions) error {
	cfg, err := gatewayConfig(opts)
	if err != nil {
		return err
	}
	cfg = cfg.Effective()
	cfg.RedisURL = gateway.RedactURL(cfg.RedisURL)
	format := opts.f.Output
	if format == "table" || format == "" {
		format = "yaml" // the settings are a tree; YAML is their table
	}
	return printOutput(opts.f.IO.Out, format, gatewaySection{cfg}, func(io.Writer) error { return nil })
}
