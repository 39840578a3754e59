package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/compose"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/rollout"
)

type statusOptions struct {
	f      *Factory
	target targetFlags
	Watch  bool // redraw until interrupted (Kubernetes)
}

func newCmdStatus(f *Factory, runF func(context.Context, *statusOptions) error) *cobra.Command {
	opts := &statusOptions{f: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the active colour, its image, healthy replicas, in-flight requests and the gateway pool",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runStatus(cmd.Context(), opts)
		},
	}
	opts.target.register(cmd)
	cmd.Flags().BoolVarP(&opts.Watch, "watch", "w", false, "redraw as it changes, at most 5 times a second, until interrupted (--target k8s)")
	return cmd
}

// statusView is what `aideploy status` shows, built from the platform's state.
type statusView struct {
	Service   string              `json:"service"`
	Active    *rollout.Deployment `json:"active,omitempty"`
	Pending   *journalView        `json:"pending,omitempty"`
	Lock      *lockView           `json:"lock,omitempty"`
	Revisions []revisionView      `json:"revisions"`
	Replicas  []replicaView       `json:"replicas"`
	Pool      *adminapi.Pool      `json:"pool,omitempty"`
	PoolError string              `json:"poolError,omitempty"`
	Canary    *canaryView         `json:"canary,omitempty"` // a canary or shadow in progress (status_canary.go)
}

type lockView struct {
	Holder rollout.Holder `json:"holder"`
	Dead   bool           `json:"dead"`
}

type revisionView struct {
	rollout.Instance
	State string `json:"state"` // serving, kept or leftover
}

type replicaView struct {
	Name     string `json:"name"`
	URL      string `json:"url"`
	Healthy  bool   `json:"healthy"`
	InPool   bool   `json:"inPool"`
	Inflight int64  `json:"inflight"`
}

// buildStatus is pure: it turns what was read into the view.
func buildStatus(service string, st rollout.State, lock *lockView, eps []compose.Endpoint, healthy []bool, pool *adminapi.Pool, poolErr error) statusView {
	v := statusView{Service: service, Active: st.Active(), Lock: lock, Pool: pool}
	if p := st.Pending(); p != nil {
		jv := newJournalView(*p)
		v.Pending = &jv
	}
	if poolErr != nil {
		v.PoolError = poolErr.Error()
	}
	for _, in := range st.Instances {
		state := "kept"
		switch {
		case v.Active != nil && in.Revision == v.Active.Revision:
			state = "serving"
		case in.Running > 0:
			state = "running"
		}
		v.Revisions = append(v.Revisions, revisionView{Instance: in, State: state})
	}
	targets := map[string]adminapi.Target{}
	if pool != nil {
		for _, t := range pool.Targets {
			targets[t.URL] = t
		}
	}
	for i, ep := range eps {
		t, ok := targets[ep.Target] // the pool names replicas as the gateway reaches them
		v.Replicas = append(v.Replicas, replicaView{Name: ep.Name, URL: ep.URL, Healthy: healthy[i], InPool: ok, Inflight: t.Inflight})
	}
	return v
}

// printStatus writes the human form of v.
func printStatus(w io.Writer, v statusView) error {
	if v.Active == nil {
		fmt.Fprintf(w, "%s: nothing deployed\n", v.Service)
	} else {
		healthy := 0
		for _, r := range v.Replicas {
			if r.Healthy {
				healthy++
			}
		}
		fmt.Fprintf(w, "%s: %s serves revision %d, image %s, %d/%d replicas healthy\n",
			v.Service, v.Active.Color, v.Active.Revision, v.Active.Image, healthy, v.Active.Replicas)
	}
	if v.Pending != nil {
		fmt.Fprintf(w, "interrupted: %s to %s stopped at step %s; run `aideploy rollout` to resume or `aideploy rollback` to undo\n",
			v.Pending.Op, v.Pending.To, v.Pending.Step)
	}
	if v.Lock != nil {
		state := "running"
		if v.Lock.Dead {
			state = "its process is gone; the next rollout breaks the lock"
		}
		fmt.Fprintf(w, "locked by %s (%s)\n", v.Lock.Holder, state)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nREVISION\tCOLOR\tIMAGE\tREPLICAS\tSTATE")
	for _, r := range v.Revisions {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d/%d running\t%s\n", r.Revision, r.Color, r.Image, r.Running, r.Total, stateText(r.State))
	}
	if len(v.Replicas) > 0 {
		fmt.Fprintln(tw, "\nREPLICA\tURL\tHEALTHY\tIN POOL\tIN FLIGHT")
		for _, r := range v.Replicas {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", r.Name, r.URL, yesNo(r.Healthy), yesNo(r.InPool), r.Inflight)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case v.PoolError != "":
		fmt.Fprintf(w, "\ngateway: %s\n", v.PoolError)
	case v.Pool != nil:
		var urls []string
		for _, t := range v.Pool.Targets {
			urls = append(urls, fmt.Sprintf("%s (healthy %s, in flight %d)", t.URL, yesNo(t.Healthy), t.Inflight))
		}
		fmt.Fprintf(w, "\ngateway pool %s: %s; %d queued\n", v.Pool.Name, strings.Join(urls, ", "), v.Pool.Queued)
	}
	printCanary(w, v.Canary)
	return nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func runStatus(ctx context.Context, o *statusOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, nil)
	if err != nil {
		return err
	}
	if t.kube != nil {
		return runKubeStatus(ctx, o, t)
	}
	if o.Watch {
		return UsageErrorf("--watch is supported with --target k8s only")
	}
	st, err := t.platform.Current(ctx)
	if err != nil {
		return err
	}
	var lock *lockView
	if h, dead, err := t.platform.LockHolder(ctx); err != nil {
		return err
	} else if h != nil {
		lock = &lockView{Holder: *h, Dead: dead}
	}
	var eps []compose.Endpoint
	var healthy []bool
	if a := st.Active(); a != nil {
		eps, _ = t.platform.Endpoints(ctx, *a)
		healthy = t.platform.Healthy(ctx, eps)
	}
	var pool *adminapi.Pool
	p, perr := t.gateway.Pool(ctx, o.target.Pool)
	if perr == nil {
		pool = &p
	}
	v := buildStatus(t.cfg.Name, st, lock, eps, healthy, pool, perr)
	v.Canary = canaryStatus(ctx, t.platform, t.settings, st.Pending(), time.Now())
	return printOutput(o.f.IO.Out, o.f.Output, v, func(w io.Writer) error { return printStatus(w, v) })
}

// stateText is a revision's state as a person reads it: a kept revision's
// stopped containers are not a failure but the instant rollback.
func stateText(state string) string {
	if state == "kept" {
		return "paused, kept for rollback"
	}
	return state
}
