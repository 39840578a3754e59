package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

// downResult is what --output json prints.
type downResult struct {
	Service string `json:"service"`
	Target  string `json:"target"`
	// Removed counts containers on Docker and objects on Kubernetes.
	Removed int `json:"removed"`
}

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
		Short: "Remove the service: both colours, kept revisions, its lock and history",
		Long: `Remove the service from its target.

On Docker (the default) it removes every container of the service: both
colours, kept revisions, its lock and history. With --target k8s it deletes
what aideploy made in the namespace: the Services, both colours' Deployments
(their pods go in the background), the autoscaler, the disruption budget,
prewarm CronJobs with their ServiceAccount and Role, the rollout history and
the rollout Lease. Objects are picked by the labels app.kubernetes.io/name
and app.kubernetes.io/managed-by=aideploy, so nothing else in the namespace
is touched.`,
		Example: `  aideploy down --yes
  aideploy down --target k8s -n serving --yes`,
		Args: noArgs,
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
	var p interface {
		LockHolder(context.Context) (*rollout.Holder, bool, error)
		Down(context.Context) (int, error)
	} = t.platform
	what := "container(s)"
	if t.kube != nil {
		p, what = t.kube, "object(s)"
	}
	if h, dead, err := p.LockHolder(ctx); err != nil {
		return err
	} else if h != nil && !dead && !o.ForceUnlock {
		return &rollout.LockedError{Service: t.cfg.Name, Holder: *h}
	}
	if o.f.IO.IsTerminal() && !o.Yes {
		fmt.Fprintf(o.f.IO.Out, "Remove every %s of %s? [y/N] ", strings.TrimSuffix(what, "(s)"), t.cfg.Name)
		answer, _ := bufio.NewReader(o.f.IO.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("cancelled; nothing was removed")
		}
	}
	n, err := p.Down(ctx)
	if err != nil {
		return err
	}
	res := downResult{Service: t.cfg.Name, Target: t.settings.Target, Removed: n}
	return printOutput(o.f.IO.Out, o.f.Output, res, func(w io.Writer) error {
		fmt.Fprintf(w, "removed %d %s of %s", n, what, t.cfg.Name)
		if t.kube == nil {
			fmt.Fprint(w, "; the gateway pool still lists its old targets until the next rollout")
		}
		fmt.Fprintln(w)
		return nil
	})
}
