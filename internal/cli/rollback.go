package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

type rollbackOptions struct {
	f           *Factory
	target      targetFlags
	Timeout     time.Duration
	Yes         bool
	ForceUnlock bool
}

func newCmdRollback(f *Factory, runF func(context.Context, *rollbackOptions) error) *cobra.Command {
	opts := &rollbackOptions{f: f}
	cmd := &cobra.Command{
		Use:   "rollback",
		Short: "Switch traffic back to the previous revision (instant while its containers are kept)",
		Long: `Switch all traffic back to the revision that served before the current one. Its
containers are kept after a rollout (rollout.keepRevisions), paused or stopped, so
a rollback resumes them instead of loading the model from scratch. An interrupted
rollout is undone.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Timeout < 0 {
				return UsageErrorf("--timeout (%s) must not be negative", opts.Timeout)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRollback(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 0, "give up after this long (0: no limit beyond the startup budget)")
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation on a terminal")
	cmd.Flags().BoolVar(&opts.ForceUnlock, "force-unlock", false, "break the rollout lock whoever holds it")
	opts.target.register(cmd)
	return cmd
}

func runRollback(ctx context.Context, o *rollbackOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, nil)
	if err != nil {
		return err
	}
	return execute(ctx, o.f, t, rollout.Request{Op: rollout.OpRollback, ForceUnlock: o.ForceUnlock}, o.Timeout, o.Yes)
}
