package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

type rolloutOptions struct {
	f      *Factory
	target targetFlags

	Strategy       string
	Image          string
	Replicas       int
	Timeout        time.Duration
	DryRun         bool
	Yes            bool
	Surge          int
	ForceUnlock    bool
	WatchWindow    *time.Duration // nil keeps rollout.watch.window
	ScaleDownDelay *time.Duration // nil keeps rollout.scaleDownDelay
	StartupBudget  time.Duration
}

func newCmdRollout(f *Factory, runF func(context.Context, *rolloutOptions) error) *cobra.Command {
	opts := &rolloutOptions{f: f}
	var watch, delay time.Duration
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Deploy a new version blue/green, canary or shadow: health-gated, warmed up, judged, rolled back on failure",
		Long: `Deploy a new version of the service next to the one serving now, wait until it is
healthy (a startup budget for slow model loads, failing fast when it dies), warm it
up with a real request, switch all traffic through the gateway at once, watch the
error rate and p99, then drain and retire the old colour. The first run is the
initial deploy. Any failure before the end of the watch leaves the old colour
serving and exits 1.

With --strategy canary (or rollout.strategy) the new version takes the shares of
rollout.canary.steps in turn instead of one switch, each judged against the serving
version from the gateway's own figures; with --strategy shadow it answers a mirrored
share of requests no client sees, judged the same way, before one switch. While
either runs, ` + "`aideploy rollout promote|abort|pause|resume`" + ` steer it from another shell.`,
		Example: `  aideploy rollout --image registry.example.com/llm:v2
  aideploy rollout --dry-run
  aideploy rollout --image llm:v2 --yes --output json
  aideploy rollout --image llm:v2 --strategy canary
  aideploy rollout abort`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("watch-window") {
				opts.WatchWindow = &watch
			}
			if cmd.Flags().Changed("scale-down-delay") {
				opts.ScaleDownDelay = &delay
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRollout(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Strategy, "strategy", "", "rollout strategy: bluegreen, canary or shadow (default: rollout.strategy of aideploy.yaml)")
	fs.StringVar(&opts.Image, "image", "", "image to deploy as IMAGE:TAG (default: image of aideploy.yaml)")
	fs.IntVar(&opts.Replicas, "replicas", 0, "replicas of the new version (default: replicas of aideploy.yaml)")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "give up and roll back after this long (0: no limit beyond the startup budget)")
	fs.BoolVar(&opts.DryRun, "dry-run", false, "print the plan and change nothing")
	fs.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation on a terminal")
	fs.IntVar(&opts.Surge, "surge", 0, "replace this many replicas at a time instead of running both colours at once (docker target)")
	fs.BoolVar(&opts.ForceUnlock, "force-unlock", false, "break the rollout lock whoever holds it")
	fs.DurationVar(&watch, "watch-window", 0, "override rollout.watch.window (0 turns the watch off)")
	fs.DurationVar(&delay, "scale-down-delay", 0, "override rollout.scaleDownDelay")
	fs.DurationVar(&opts.StartupBudget, "startup-budget", 0, "override rollout.startupBudget")
	opts.target.register(cmd)
	for _, v := range []rollout.Verb{rollout.VerbPromote, rollout.VerbAbort, rollout.VerbPause, rollout.VerbResume} {
		cmd.AddCommand(newCmdRolloutVerb(f, v, nil))
	}
	return cmd
}

// validate checks the flags alone; it does no I/O.
func (o *rolloutOptions) validate() error {
	switch {
	case o.Strategy != "" && o.Strategy != rollout.StrategyBlueGreen && o.Strategy != rollout.StrategyCanary && o.Strategy != rollout.StrategyShadow:
		return UsageErrorf("--strategy %q is not supported; use bluegreen, canary or shadow", o.Strategy)
	case o.target.Target != "" && o.target.Target != rollout.TargetDocker && o.target.Target != rollout.TargetK8s:
		return UsageErrorf("--target %q is not supported; use docker or k8s", o.target.Target)
	case o.Replicas < 0:
		return UsageErrorf("--replicas (%d) must not be negative", o.Replicas)
	case o.Timeout < 0:
		return UsageErrorf("--timeout (%s) must not be negative", o.Timeout)
	case o.WatchWindow != nil && *o.WatchWindow < 0, o.ScaleDownDelay != nil && *o.ScaleDownDelay < 0, o.StartupBudget < 0:
		return UsageErrorf("--watch-window, --scale-down-delay and --startup-budget must not be negative")
	case o.Surge < 0:
		return UsageErrorf("--surge (%d) must not be negative", o.Surge)
	case o.Image != "" && !strings.Contains(o.Image[strings.LastIndex(o.Image, "/")+1:], ":") && !strings.Contains(o.Image, "@"):
		return UsageErrorf("--image %q has no tag; name the version, e.g. %s:v2", o.Image, o.Image)
	}
	return nil
}

func (o *rolloutOptions) tweak(c *rollout.Config) {
	if o.Strategy != "" {
		c.Strategy = o.Strategy
	}
	if o.Surge > 0 {
		c.Surge = o.Surge
	}
	if o.WatchWindow != nil {
		c.Watch.Window = units.Duration(*o.WatchWindow)
	}
	if o.ScaleDownDelay != nil {
		c.ScaleDownDelay = units.Duration(*o.ScaleDownDelay)
	}
	if o.StartupBudget > 0 {
		c.StartupBudget = units.Duration(o.StartupBudget)
	}
}

func runRollout(ctx context.Context, o *rolloutOptions) error {
	t, err := newDeployTarget(ctx, o.f, o.target, o.tweak)
	if err != nil {
		return err
	}
	req := rollout.Request{Op: rollout.OpRollout, Image: o.Image, Replicas: o.Replicas, ConfigHash: t.hash,
		ForceUnlock: o.ForceUnlock, DryRun: o.DryRun}
	if req.Image == "" {
		req.Image = t.cfg.Image
	}
	if req.Replicas == 0 {
		req.Replicas = t.cfg.Replicas
	}
	return execute(ctx, o.f, t, req, o.Timeout, o.Yes)
}

// execute runs req with progress, asking first on a terminal unless yes.
func execute(ctx context.Context, f *Factory, t *deployTarget, req rollout.Request, timeout time.Duration, yes bool) error {
	prog := newProgress(f.IO, f.Output)
	r := &rollout.Runner{Platform: t.runner(), Config: t.settings, Holder: holder(), Observe: prog.Observe}
	if t.settings.Webhook != "" && !req.DryRun {
		wh := &rollout.Webhook{URL: t.settings.Webhook, Service: t.cfg.Name,
			Logf: func(format string, args ...any) { fmt.Fprintf(f.IO.ErrOut, "aideploy: "+format+"\n", args...) }}
		r.Observe = func(e rollout.Event) { prog.Observe(e); wh.Observe(e) }
		defer func() {
			// Give the last events a moment to leave; a receiver that is down never holds the command longer.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if dropped, failed := wh.Close(cctx); dropped+failed > 0 {
				fmt.Fprintf(f.IO.ErrOut, "aideploy: rollout.webhook %s missed %d event(s)\n", t.settings.Webhook, dropped+failed)
			}
		}()
	}
	if f.IO.IsTerminal() && !yes && !req.DryRun && f.Output != "json" {
		plan := req
		plan.DryRun = true
		quiet := *r
		quiet.Observe = nil
		res, err := quiet.Run(ctx, plan)
		if err != nil {
			return err
		}
		if res.NoOp {
			fmt.Fprintln(f.IO.Out, res.Summary)
			return nil
		}
		fmt.Fprintf(f.IO.Out, "%s\nProceed? [y/N] ", res.Summary)
		answer, _ := bufio.NewReader(f.IO.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
			return errors.New("cancelled; nothing was changed")
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if prog.mode == "live" {
		tctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() {
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-tctx.Done():
					return
				case <-tick.C:
					prog.Tick()
				}
			}
		}()
	}
	start := time.Now()
	res, err := r.Run(ctx, req)
	prog.Close()
	return report(f, res, err, time.Since(start), req.DryRun)
}

// report prints the outcome: one summary line, or the failure paragraph and exit 1.
func report(f *Factory, res rollout.Result, err error, took time.Duration, dryRun bool) error {
	if f.Output == "json" {
		out := map[string]any{"result": res.Journal, "noop": res.NoOp, "dryRun": dryRun, "resumed": res.Resumed, "summary": res.Summary,
			"durationMs": took.Milliseconds(), "healthyToSwitchedMs": res.HealthyToSwitched.Milliseconds(),
			"timeToFirstTokenMs": res.Warmup.TimeToFirstToken.Milliseconds()}
		if err != nil {
			out["error"] = err.Error()
		}
		b, _ := json.Marshal(out)
		fmt.Fprintf(f.IO.Out, "%s\n", b)
	}
	if err != nil {
		var lf *rollout.LockedError
		switch {
		case errors.As(err, &lf):
			fmt.Fprintf(f.IO.ErrOut, "aideploy: %v\n", err)
		default:
			fmt.Fprintf(f.IO.ErrOut, "\n%v\n", err)
		}
		return &SilentError{Code: ExitFailed}
	}
	if f.Output != "json" {
		switch {
		case res.NoOp:
			fmt.Fprintln(f.IO.Out, res.Summary)
		case dryRun:
			fmt.Fprintf(f.IO.Out, "dry run: %s; nothing was changed\n", res.Summary)
		default:
			line := fmt.Sprintf("%s done in %s: %s serves all traffic", res.Journal.Op, took.Round(100*time.Millisecond), res.Journal.To)
			if res.Warmup.TimeToFirstToken > 0 {
				line += fmt.Sprintf(" (warm-up time to first token %s)", res.Warmup.TimeToFirstToken.Round(time.Millisecond))
			}
			fmt.Fprintln(f.IO.Out, line)
		}
	}
	return nil
}
