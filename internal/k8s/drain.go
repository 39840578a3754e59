package k8s

import (
	"fmt"
	"math"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/rollout"
)

// withDrain gives every Deployment's model container a preStop pause of
// rollout.preStopDelay, so that the endpoint controller, kube-proxy and any
// gateway stop sending to a terminating pod before the server gets SIGTERM,
// and a termination grace of that pause plus rollout.drainTimeout, so the
// longest generation in flight finishes. The pause uses the kubelet's own
// sleep action: model images need not ship a shell.
func withDrain(objs []*unstructured.Unstructured, r rollout.Config) error {
	pause := r.PreStopDelay.D()
	grace := pause + r.DrainTimeout.D()
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		if err := unstructured.SetNestedField(o.Object, seconds(grace), "spec", "template", "spec", "terminationGracePeriodSeconds"); err != nil {
			return fmt.Errorf("setting the grace period of Deployment %s: %w", o.GetName(), err)
		}
		if pause <= 0 {
			continue
		}
		containers, _, err := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		if err != nil || len(containers) == 0 {
			return fmt.Errorf("reading the containers of Deployment %s: %v", o.GetName(), err)
		}
		c := containers[0].(map[string]any)
		c["lifecycle"] = map[string]any{"preStop": map[string]any{"sleep": map[string]any{"seconds": seconds(pause)}}}
		if err := unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			return err
		}
	}
	return nil
}

// seconds rounds d up to whole seconds, as the pod spec counts them.
func seconds(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }
