package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/k8s"
	"github.com/aideploy/aideploy/internal/rollout"
)

type applyOptions struct {
	f      *Factory
	Target string
	DryRun string // "none" or "server"
	Diff   bool
	// ForceConflicts takes over fields another manager changed.
	ForceConflicts bool
}

type applyResult struct {
	DryRun  bool         `json:"dryRun"`
	Changes []k8s.Change `json:"changes"`
}

func newCmdApply(f *Factory, runF func(context.Context, *applyOptions) error) *cobra.Command {
	opts := &applyOptions{f: f}
	cmd := &cobra.Command{
		Use:   "apply",
		Short: "Apply the rendered Kubernetes objects with server-side apply",
		Long: `Apply renders the Kubernetes objects of aideploy.yaml and server-side applies them
with the field manager "aideploy". With the blue/green strategy the Deployment is
applied as the serving colour (<name>-blue on a first apply) next to the active
Service <name> and the preview Service <name>-preview; there is never a Deployment
without a colour. --dry-run=server has the API server validate and default
everything without storing it; --diff shows what would change. A field another
manager changed (an operator's kubectl edit) is not overwritten: apply names
such fields and changes nothing, unless --force-conflicts is given. The serving
colour keeps its live replica count and a prewarmed autoscaler its floor.

With the gateway (gateway.enabled, the default) apply also applies k8s/gateway:
the gateway's Deployment, Service, HPA, PDB, NetworkPolicy, the ConfigMap with
its configuration (its default pool sent to the serving colour), the headless
Service of each colour and Redis. The admin token Secret is not rendered:
create it once, as the Deployment's comment says.`,
		Example: `  aideploy apply --target k8s --dry-run=server --diff
  aideploy apply --target k8s -n serving`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.Target != "" && opts.Target != rollout.TargetK8s:
				return UsageErrorf("--target %q is not supported by apply; use --target k8s (on Docker, aideploy rollout deploys)", opts.Target)
			case opts.DryRun != "none" && opts.DryRun != "server":
				return UsageErrorf("--dry-run %q is not supported; use server or none", opts.DryRun)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runApply(cmd.Context(), opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.Target, "target", "", "platform: k8s (default: rollout.target of aideploy.yaml, which must be k8s)")
	fs.StringVar(&opts.DryRun, "dry-run", "none", "server: validate on the API server and store nothing")
	fs.Lookup("dry-run").NoOptDefVal = "server"
	fs.BoolVar(&opts.Diff, "diff", false, "show what changes, line by line")
	fs.BoolVar(&opts.ForceConflicts, "force-conflicts", false, "take over fields another manager (kubectl edit, an operator) changed; without it apply names them and changes nothing")
	return cmd
}

func runApply(ctx context.Context, o *applyOptions) error {
	cfg, err := o.f.Config()
	if err != nil {
		return err
	}
	if o.Target == "" && cfg.Rollout.Target != rollout.TargetK8s {
		return UsageErrorf("rollout.target of aideploy.yaml is %q and apply works on Kubernetes only: set it to k8s, or pass --target k8s (on Docker, aideploy rollout deploys)", cfg.Rollout.Target)
	}
	kc, err := o.f.Kube()
	if err != nil {
		return err
	}
	objs, err := kc.ServingManifests(ctx, cfg, sourceName(o.f.ConfigPath, "."))
	if err != nil {
		return err
	}
	gw, err := kc.GatewayServingManifests(ctx, cfg, sourceName(o.f.ConfigPath, "."))
	if err != nil {
		return err
	}
	objs = append(objs, gw...)
	dry := o.DryRun == "server"
	changes, err := kc.ApplyRespecting(ctx, objs, dry, o.ForceConflicts)
	var ce *k8s.ConflictError
	switch {
	case errors.As(err, &ce):
		return err
	case err != nil:
		return fmt.Errorf("%w; nothing after it was applied", err)
	}
	res := applyResult{DryRun: dry, Changes: changes}
	return printOutput(o.f.IO.Out, o.f.Output, res, func(w io.Writer) error {
		suffix := ""
		if dry {
			suffix = " (server dry run)"
		}
		for _, c := range changes {
			fmt.Fprintf(w, "%s%s\n", c, suffix)
			if o.Diff && c.Diff != "" {
				fmt.Fprint(w, indent(c.Diff, "    "))
			}
		}
		return nil
	})
}

func indent(s, prefix string) string {
	var sb strings.Builder
	for _, line := range strings.SplitAfter(s, "\n") {
		if line != "" {
			sb.WriteString(prefix + line)
		}
	}
	return sb.String()
}
