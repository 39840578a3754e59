package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aideploy/aideploy/internal/buildinfo"
	"github.com/aideploy/aideploy/internal/k8s"
)

// prewarmK8sResult is what prewarm on Kubernetes prints with --output json.
type prewarmK8sResult struct {
	// HPA names the HorizontalPodAutoscaler whose floor moved (autoscaling.engine hpa).
	HPA string `json:"hpa,omitempty"`
	// ScaledObject names KEDA's ScaledObject whose minReplicaCount moved (engine keda).
	ScaledObject string `json:"scaledObject,omitempty"`
	// Action is raised, restored, or none (--restore with nothing recorded).
	Action string `json:"action"`
	// Replicas is the floor prewarm set.
	Replicas int `json:"replicas,omitempty"`
	// Original holds the bounds before prewarm, as recorded on the autoscaler.
	Original *k8s.PrewarmRecord `json:"original,omitempty"`
	// RestoreAt is when the restore CronJob puts the floor back.
	RestoreAt      *time.Time `json:"restoreAt,omitempty"`
	RestoreCronJob string     `json:"restoreCronJob,omitempty"`
	// RemovedCronJob is the restore CronJob that --restore removed.
	RemovedCronJob string `json:"removedCronJob,omitempty"`
	Ready          int    `json:"ready,omitempty"`
}

// runPrewarmK8s raises or restores the floor of the autoscaler of service
// name: its HPA, or KEDA's ScaledObject, which owns an HPA of its own and
// overwrites that HPA's bounds, so its minReplicaCount is the floor. The human lines
// go to standard output, or to standard error when --output asks for JSON or
// YAML, which then comes alone on standard output.
func runPrewarmK8s(ctx context.Context, o *prewarmOptions, name string) error {
	kc, err := o.f.Kube()
	if err != nil {
		return err
	}
	say := o.f.IO.Out
	if o.f.Output != "table" {
		say = o.f.IO.ErrOut
	}
	a, err := kc.FindAutoscaler(ctx, name)
	if err != nil {
		return err
	}
	var res prewarmK8sResult
	if a.Kind == k8s.KindScaledObject {
		res.ScaledObject = name
	} else {
		res.HPA = name
	}
	report := func() error {
		return printOutput(o.f.IO.Out, o.f.Output, res, func(io.Writer) error { return nil })
	}
	if o.Restore {
		rec, err := kc.Restore(ctx, name)
		if err != nil {
			return err
		}
		res.Action, res.Original = "restored", rec
		if rec == nil {
			res.Action = "none"
			fmt.Fprintf(say, "%s has no prewarm to restore\n", a)
		} else {
			lo, hi := a.BoundFields()
			fmt.Fprintf(say, "%s restored to %s %d, %s %d\n", a, lo, rec.MinReplicas, hi, rec.MaxReplicas)
		}
		cancelled, err := kc.CancelRestore(ctx, name)
		if err != nil {
			return err
		}
		if cancelled {
			res.RemovedCronJob = k8s.RestoreCronJobName(name)
			fmt.Fprintf(say, "removed the scheduled restore (CronJob %s)\n", res.RemovedCronJob)
		}
		return report()
	}
	if err := waitUntil(ctx, say, o.At); err != nil {
		return err
	}
	now := time.Now()
	var until time.Time
	switch {
	case o.For > 0:
		until = now.Add(o.For)
	case o.Until != "":
		until, _ = time.Parse(time.RFC3339, o.Until)
	}
	rec, err := kc.Prewarm(ctx, name, int32(o.Replicas), until, now)
	if err != nil {
		return err
	}
	res.Action, res.Replicas, res.Original = "raised", o.Replicas, &rec
	fmt.Fprintf(say, "%s floor raised to %d (was %d, ceiling %d); aideploy prewarm --restore puts it back\n",
		a, o.Replicas, rec.MinReplicas, max(rec.MaxReplicas, int32(o.Replicas)))
	if !until.IsZero() && o.ScheduleRestore {
		image := o.RestoreImage
		if image == "" {
			image = "ghcr.io/aideploy/aideploy:" + buildinfo.Version
		}
		due, err := kc.ScheduleRestore(ctx, name, until, image)
		if err != nil {
			return fmt.Errorf("the floor is raised, but %w; run aideploy prewarm --restore when the peak ends", err)
		}
		res.RestoreAt, res.RestoreCronJob = &due, k8s.RestoreCronJobName(name)
		fmt.Fprintf(say, "the floor returns at %s (CronJob %s)\n", due.Format(time.RFC3339), res.RestoreCronJob)
	}
	if o.Wait {
		wctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		if err := waitPrewarm(wctx, o.f, say, kc, name, o.Replicas); err != nil {
			return err
		}
		res.Ready = o.Replicas
	}
	return report()
}
