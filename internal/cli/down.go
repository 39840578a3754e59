package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

type downOptions struct {
	f           *Factory
	target      targetFlags
	Yes         bool
	ForceUnlock bool
}

func newCmdDown(f *Factory, runF func(context.Context, *downOptions) error) *cobra.Command {
	opts := &downOptions{f: f}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove every container of the service: both colours, kept revisions, its lock and history",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runDown(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation on a terminal")
	cmd.Flags().BoolVar(&opts.ForceUnlock, "force-unlock", false, "remove the service even while a rollout holds its lock")
	opts.target.register(cmd)
	return cmd
}

func runDown(ctx context.Context, o *downOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, nil)
	if err != nil {
		return err
	}
	if err := t.dockerOnly("down"); err != nil {
		return err
	}
	if h, dead, err := t.platform.LockHolder(ctx); err != nil {
		return err
	} else if h != nil && !dead && !o.ForceUnlock {
		return &rollout.LockedError{Service: t.cfg.Name, Holder: *h}
	}
	if o.f.IO.IsTerminal() && !o.Yes {
		fmt.Fprintf(o.f.IO.Out, "Remove every container of %s? [y/N] ", t.cfg.Name)
		answer, _ := bufio.NewReader(o.f.IO.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("cancelled; nothing was removed")
		}
	}
	n, err := t.platform.Down(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.f.IO.Out, "removed %d container(s) of %s; the gateway pool still lists its old targets until the next rollout\n", n, t.cfg.Name)
	return nil
}
