package cli

import (
	"context"
	"io"

	"github.com/aideploy/aideploy/internal/k8s"
)

// runKubeStatus prints the blue/green tree of the service on Kubernetes.
func runKubeStatus(ctx context.Context, o *statusOptions, t *deployTarget) error {
	kc, err := o.f.Kube()
	if err != nil {
		return err
	}
	v, err := kc.ReadStatus(ctx, t.cfg.Name)
	if err != nil {
		return err
	}
	return printOutput(o.f.IO.Out, o.f.Output, v, func(w io.Writer) error {
		k8s.PrintStatus(w, v)
		return nil
	})
}
