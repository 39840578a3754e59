package cli

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/buildinfo"
)

const rootLong = `aideploy takes an AI model service from a laptop demo to a production
deployment that survives its first traffic peak. aideploy.yaml is the one source
of truth; every command reads it.

Exit codes:
  0  the operation succeeded
  1  the operation ran and failed (a check failed, a rollout rolled back)
  2  bad flags, arguments or configuration; nothing was changed`

// NewRootCmd builds the command tree.
func NewRootCmd(f *Factory) *cobra.Command {
	var noColor bool
	root := &cobra.Command{
		Use:           "aideploy",
		Short:         "Deploy, scale and protect AI model services",
		Long:          rootLong,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if noColor {
				f.IO.DisableColor()
			}
			if f.Output == "wide" {
				// Commands read Output as table, json or yaml; the few
				// whose table narrows itself read Wide.
				f.Output, f.Wide = "table", true
			}
			return validateOutput(f.Output)
		},
	}
	// --version as docker and most CLIs take it, beside `aideploy version`.
	root.Version = versionLine(buildinfo.Get())
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetFlagErrorFunc(flagError)
	pf := root.PersistentFlags()
	pf.StringVar(&f.ConfigPath, "config", f.ConfigPath, "path of aideploy.yaml")
	pf.StringVarP(&f.Output, "output", "o", f.Output, "output format: table, wide (every column whole), json or yaml")
	pf.BoolVar(&noColor, "no-color", false, "never write colour (also NO_COLOR)")
	pf.BoolVarP(&f.Verbose, "verbose", "v", false, "log more detail to stderr")
	if f.KubeFlags != nil {
		f.KubeFlags.AddFlags(pf)
	}
	_ = root.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(outputFormats, cobra.ShellCompDirectiveNoFileComp))

	root.AddCommand(
		newCmdInit(f, nil),
		newCmdRender(f, nil),
		newCmdVersion(f, nil),
		newCmdValidate(f, nil),
		newCmdSchema(f),
		newCmdGateway(f),
		newCmdRollout(f, nil),
		newCmdRollback(f, nil),
		newCmdStatus(f, nil),
		newCmdHistory(f, nil),
		newCmdDown(f, nil),
		newCmdApply(f, nil),
		newCmdPrewarm(f, nil),
		newCmdPreflight(f, nil),
		newCmdGPUMetrics(f),
	)
	return root
}

// noArgs is cobra.NoArgs returning a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return UsageErrorf("%s takes no arguments, got %q", commandName(cmd), args)
	}
	return nil
}

// maxArgs is cobra.MaximumNArgs returning a usage error.
func maxArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > n {
			return UsageErrorf("%s takes at most %d argument(s), got %q", commandName(cmd), n, args)
		}
		return nil
	}
}

// commandName is the command's path without the program's name, for
// messages that ExitCode already prefixes with "aideploy: ".
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}
