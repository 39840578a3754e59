package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

type prewarmOptions struct {
	f        *Factory
	target   targetFlags
	Name     string
	Replicas int
	Wait     bool
	Restore  bool
	For      time.Duration
	Until    string
	At       string
	Timeout  time.Duration
	// ScheduleRestore, with For or Until, applies a CronJob that restores the floor then.
	ScheduleRestore bool
	RestoreImage    string
}

func newCmdPrewarm(f *Factory, runF func(context.Context, *prewarmOptions) error) *cobra.Command {
	opts := &prewarmOptions{f: f}
	cmd := &cobra.Command{
		Use:   "prewarm",
		Short: "Raise the autoscaler's floor ahead of a planned peak, and restore it after",
		Long: `Prewarm raises the HorizontalPodAutoscaler's minReplicas (and maxReplicas when it
is lower) so the pods for a planned peak load their models before it starts. The
original bounds are recorded on the HPA in the same update; --restore puts them
back and may be run any number of times. With --for or --until, a one-off
CronJob (<name>-prewarm-restore, running the aideploy image) restores them when
the peak ends, and removes itself; --restore before then removes it too.

With autoscaling.engine keda the floor is the KEDA ScaledObject's
minReplicaCount (and maxReplicaCount the ceiling): KEDA owns the HPA it
creates (keda-hpa-<name>) and overwrites that HPA's bounds from them.

--wait shows ready and pending pods until all are ready, and fails (exit 1) as
soon as pods cannot be scheduled for lack of GPUs, saying how many are free.

Scheduled peaks belong in aideploy.yaml (prewarm:); "aideploy render prewarm"
turns them into CronJobs that start early by startup.coldStart.

With --target docker, prewarm starts more containers of the serving revision
(same colour, image and labels), waits until they pass their health check, and
adds them to the gateway pool in one health-gated swap: it returns once they
serve. --restore drains them out of the pool and removes them.`,
		Example: `  aideploy prewarm --replicas 10 --wait
  aideploy prewarm --replicas 10 --for 2h
  aideploy prewarm --restore
  aideploy prewarm --replicas 4 --target docker
  aideploy prewarm --restore --target docker`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := opts.validate(cmd); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runPrewarm(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Name, "name", "", "service (HPA or ScaledObject) name (default: name of aideploy.yaml)")
	fs.IntVar(&opts.Replicas, "replicas", 0, "floor during the peak")
	fs.BoolVar(&opts.Wait, "wait", false, "wait until the pods are ready; fail fast when capacity is missing")
	fs.BoolVar(&opts.Restore, "restore", false, "put back the bounds recorded by the last prewarm")
	fs.DurationVar(&opts.For, "for", 0, "the peak lasts this long; the floor is restored then")
	fs.StringVar(&opts.Until, "until", "", "the peak ends at this time, RFC 3339; the floor is restored then")
	fs.BoolVar(&opts.ScheduleRestore, "schedule-restore", true, "with --for or --until, apply a CronJob that restores the floor when the peak ends")
	fs.StringVar(&opts.RestoreImage, "restore-image", "", "aideploy image the restore CronJob runs (default ghcr.io/aideploy/aideploy:VERSION)")
	fs.StringVar(&opts.At, "at", "", "wait until this time, RFC 3339, before raising the floor")
	fs.DurationVar(&opts.Timeout, "timeout", 15*time.Minute, "with --wait (always on Docker), give up after this long")
	opts.target.register(cmd)
	return cmd
}

func (o *prewarmOptions) validate(cmd *cobra.Command) error {
	switch {
	case o.target.Target != "" && o.target.Target != rollout.TargetK8s && o.target.Target != rollout.TargetDocker:
		return UsageErrorf("--target %q is not supported; use k8s or docker", o.target.Target)
	case o.target.Target == rollout.TargetDocker && (o.For != 0 || o.Until != ""):
		return UsageErrorf("--for and --until need --target k8s; on Docker run aideploy prewarm --restore --target docker when the peak ends")
	case o.Restore && cmd.Flags().Changed("replicas"):
		return UsageErrorf("--restore and --replicas exclude each other; choose one")
	case !o.Restore && o.Replicas < 1:
		return UsageErrorf("--replicas (%d) must be at least 1, e.g. --replicas 10", o.Replicas)
	case o.For != 0 && o.Until != "":
		return UsageErrorf("--for and --until exclude each other; choose one")
	case o.For < 0:
		return UsageErrorf("--for (%s) must be positive", o.For)
	}
	for _, t := range []struct{ flag, v string }{{"until", o.Until}, {"at", o.At}} {
		if t.v == "" {
			continue
		}
		if _, err := time.Parse(time.RFC3339, t.v); err != nil {
			return UsageErrorf("--%s %q is not an RFC 3339 time, e.g. 2026-12-24T18:00:00+08:00", t.flag, t.v)
		}
	}
	return nil
}

func runPrewarm(ctx context.Context, o *prewarmOptions) error {
	target, err := resolveTarget(o.f, o.target.Target)
	if err != nil {
		return err
	}
	if target == rollout.TargetDocker {
		if o.For != 0 || o.Until != "" {
			return UsageErrorf("--for and --until need Kubernetes, and rollout.target of aideploy.yaml is docker; on Docker run aideploy prewarm --restore when the peak ends")
		}
		return runPrewarmDocker(ctx, o)
	}
	name := o.Name
	if name == "" {
		cfg, err := o.f.Config()
		if err != nil {
			return err
		}
		name = cfg.Name
	}
	return runPrewarmK8s(ctx, o, name)
}

// waitPrewarm shows the pods coming up: one redrawn line on a terminal, a
// line per change otherwise.
func waitPrewarm(ctx context.Context, f *Factory, w io.Writer, kc *k8s.Client, name string, want int) error {
	live := f.IO.IsTerminal() && w == f.IO.Out
	last := ""
	err := kc.WaitScaled(ctx, name, want, func(p k8s.Progress) {
		line := p.String()
		if line == last {
			return
		}
		last = line
		if live {
			fmt.Fprintf(w, "\r\033[K%s", line)
		} else {
			fmt.Fprintln(w, line)
		}
	})
	if live {
		fmt.Fprintln(w)
	}
	var ce *k8s.CapacityError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(f.IO.ErrOut, "aideploy: not enough capacity: %v\nfree GPUs or lower --replicas; the floor stays raised until aideploy prewarm --restore\n", ce)
		return &SilentError{Code: ExitFailed}
	case err != nil:
		return err
	}
	fmt.Fprintf(w, "%d/%d ready\n", want, want)
	return nil
}
