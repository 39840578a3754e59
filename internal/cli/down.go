package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
)

// downResult is what --output json prints.
type downResult struct {
	Service string `json:"service"`
	Target  string `json:"target"`
	// Removed counts containers on Docker and objects on Kubernetes.
	Removed int `json:"removed"`
	// Terminating counts the Kubernetes pods still there when down returned:
	// 0 after the wait, and what --wait=false left behind.
	Terminating int `json:"terminating"`
}

type downOptions struct {
	f           *Factory
	target      targetFlags
	Yes         bool
	ForceUnlock bool
	Wait        bool
	Timeout     time.Duration
}

func newCmdDown(f *Factory, runF func(context.Context, *downOptions) error) *cobra.Command {
	opts := &downOptions{f: f}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove the service: both colours, kept revisions, its lock and history",
		Long: `Remove the service from its target.

On Docker (the default) it removes every container of the service: both
colours, kept revisions, its lock and history. With --target k8s it deletes
what aideploy made in the namespace: the Services, both colours' Deployments,
the autoscaler, the disruption budget,
prewarm CronJobs with their ServiceAccount and Role, the gateway's objects
(Deployment, Services, ConfigMap, HPA, PDB, NetworkPolicy) and its Redis, the
rollout history and the rollout Lease. Objects are picked by the labels
app.kubernetes.io/name (app.kubernetes.io/part-of for the gateway's) and
app.kubernetes.io/managed-by=aideploy, so nothing else in the namespace is
touched; the gateway's admin token Secret, which you created, stays. It then waits, up to --timeout, until the service's pods are
gone and their GPUs free for the next deploy; --wait=false returns at once
and says how many pods are still terminating.`,
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
	cmd.Flags().BoolVar(&opts.Wait, "wait", true, "on Kubernetes, wait until the service's pods are gone and their GPUs free")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "how long --wait waits for the pods to go")
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
	if t.kube != nil {
		if o.Wait {
			wctx, cancel := context.WithTimeout(ctx, o.Timeout)
			err = t.kube.WaitPodsGone(wctx)
			cancel()
			if err != nil {
				return fmt.Errorf("removed %d %s of %s, but %w", n, what, t.cfg.Name, err)
			}
		} else if res.Terminating, _, err = t.kube.PodsLeft(ctx); err != nil {
			return err
		}
	}
	return printOutput(o.f.IO.Out, o.f.Output, res, func(w io.Writer) error {
		fmt.Fprintf(w, "removed %d %s of %s", n, what, t.cfg.Name)
		if t.kube == nil {
			fmt.Fprint(w, "; the gateway pool still lists its old targets until the next rollout")
		} else if res.Terminating > 0 {
			fmt.Fprintf(w, "; %d pod(s) still terminating", res.Terminating)
		}
		fmt.Fprintln(w)
		return nil
	})
}
