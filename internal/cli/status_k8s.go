package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

// watchInterval bounds --watch to 5 redraws a second.
const watchInterval = 200 * time.Millisecond

// runKubeStatus prints the blue/green tree of the service on Kubernetes.
func runKubeStatus(ctx context.Context, o *statusOptions, t *deployTarget) error {
	kc, err := o.f.Kube()
	if err != nil {
		return err
	}
	if o.Watch {
		if o.f.Output != "table" && o.f.Output != "" {
			return UsageErrorf("--watch draws the table; drop --output %s", o.f.Output)
		}
		err := watchStatus(ctx, o.f.IO.Out, o.f.IO.IsTerminal(), watchInterval, func(ctx context.Context) (string, error) {
			v, err := readKubeStatus(ctx, kc, t)
			if err != nil {
				return "", err
			}
			var sb strings.Builder
			printKubeStatus(&sb, v)
			return sb.String(), nil
		})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	}
	v, err := readKubeStatus(ctx, kc, t)
	if err != nil {
		return err
	}
	return printOutput(o.f.IO.Out, o.f.Output, v, func(w io.Writer) error {
		printKubeStatus(w, v)
		return nil
	})
}

// kubeStatusView is the service on Kubernetes and, while a canary or shadow
// runs, its step, shares and figures (the same canary object as on Docker).
type kubeStatusView struct {
	k8s.StatusView
	Canary *canaryView `json:"canary,omitempty"`
}

// readKubeStatus reads the service's objects, how traffic reaches them and
// the figures of a canary or shadow in progress, read live from the gateway pods.
func readKubeStatus(ctx context.Context, kc *k8s.Client, t *deployTarget) (kubeStatusView, error) {
	sv, err := kc.ReadStatus(ctx, t.cfg.Name)
	v := kubeStatusView{StatusView: sv}
	if err != nil {
		return v, err
	}
	tr, err := kc.ReadTraffic(ctx, t.cfg.Name, t.cfg.Gateway.OnKubernetes())
	if err != nil {
		return v, err
	}
	v.Traffic = &tr
	if v.Last != nil && t.kube != nil {
		// Last is the newest journal: a canary or shadow in progress when unfinished.
		v.Canary = canaryStatus(ctx, t.kube, t.settings, rollout.State{Journals: []rollout.Journal{*v.Last}}.Pending(), time.Now())
	}
	return v, nil
}

func printKubeStatus(w io.Writer, v kubeStatusView) {
	k8s.PrintStatus(w, v.StatusView)
	printCanary(w, v.Canary)
}

// watchStatus redraws what frame returns whenever it changes, polling every
// interval: on a terminal it clears the screen first, otherwise it appends
// the new frame after a blank line. It returns when ctx ends or frame fails.
func watchStatus(ctx context.Context, w io.Writer, tty bool, interval time.Duration, frame func(context.Context) (string, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	last, drawn := "", 0
	for {
		f, err := frame(ctx)
		if err != nil {
			return err
		}
		if f != last || drawn == 0 {
			switch {
			case tty:
				fmt.Fprint(w, "\033[H\033[2J"+f)
			case drawn > 0:
				fmt.Fprint(w, "\n"+f)
			default:
				fmt.Fprint(w, f)
			}
			last = f
			drawn++
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
