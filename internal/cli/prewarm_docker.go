package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/compose"
	"github.com/aideploy/aideploy/internal/rollout"
)

// runPrewarmDocker adds replicas of the serving revision to the gateway pool,
// or with --restore takes them out again; it returns once they serve or are gone.
func runPrewarmDocker(ctx context.Context, o *prewarmOptions) error {
	tf := o.target
	tf.Target = rollout.TargetDocker
	t, err := newDeployTarget(ctx, o.f, tf, nil)
	if err != nil {
		return err
	}
	if !o.Restore {
		if err := waitUntil(ctx, o.f.IO.Out, o.At); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	var res compose.PrewarmResult
	if o.Restore {
		res, err = t.platform.Restore(ctx, holder())
	} else {
		res, err = t.platform.Prewarm(ctx, holder(), o.Replicas, t.settings.StartupBudget.D())
	}
	if err != nil {
		// Nothing deployed, the lock held, a replica that never became healthy: all said in err.
		fmt.Fprintf(o.f.IO.ErrOut, "aideploy: %v\n", err)
		return &SilentError{Code: ExitFailed}
	}
	return printOutput(o.f.IO.Out, o.f.Output, res, func(w io.Writer) error {
		printPrewarmDocker(w, res, o.Restore)
		return nil
	})
}

func printPrewarmDocker(w io.Writer, res compose.PrewarmResult, restore bool) {
	switch {
	case restore && len(res.Removed) == 0:
		fmt.Fprintf(w, "%s has no prewarmed replicas to remove\n", res.Service)
	case restore:
		fmt.Fprintf(w, "%s restored to %d replica(s): removed %s; gateway pool has %d target(s)\n",
			res.Service, res.Replicas, strings.Join(res.Removed, ", "), res.PoolTargets)
	case len(res.Added) == 0:
		fmt.Fprintf(w, "%s already runs %d replica(s) of %s; nothing to add\n", res.Service, res.Replicas, res.Active)
	default:
		fmt.Fprintf(w, "%s prewarmed to %d replica(s) of %s (was %d): added %s; gateway pool has %d target(s)\n",
			res.Service, res.Replicas, res.Active, res.Original, strings.Join(res.Added, ", "), res.PoolTargets)
		fmt.Fprintln(w, "aideploy prewarm --restore --target docker puts it back")
	}
}

// waitUntil sleeps until the RFC 3339 time at, if given and still ahead.
func waitUntil(ctx context.Context, w io.Writer, at string) error {
	if at == "" {
		return nil
	}
	t, _ := time.Parse(time.RFC3339, at)
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	fmt.Fprintf(w, "waiting until %s\n", t.Format(time.RFC3339))
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
