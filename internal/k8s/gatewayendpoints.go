package k8s

import (
	"context"
	"fmt"
	"strconv"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/rollout"
)

// waitEndpoints waits until d's headless Service lists every ready pod of d
// as a ready endpoint: the gateway pods resolve the Service's name, and the
// endpoint controller writes a pod that just became ready a moment later.
func (p *Platform) waitEndpoints(ctx context.Context, d rollout.Deployment, timeout time.Duration) error {
	svc := HeadlessName(p.name, d.Color)
	sel := LabelName + "=" + p.name + "," + LabelColor + "=" + string(d.Color)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		want, have, err := p.endpoints(ctx, svc, sel, d.Revision)
		if err == nil && len(want) > 0 && countMissing(want, have) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("waiting for Service %s to list the pods of %s: %w", svc, d, err)
			}
			return fmt.Errorf("Service %s lists %d of the %d ready pods of %s as ready endpoints after %s; check that it exists (aideploy apply applies k8s/gateway) and selects the pods",
				svc, len(want)-countMissing(want, have), len(want), d, timeout)
		case <-tick.C:
		}
	}
}

// endpoints returns the addresses of d's ready pods and those of svc's ready endpoints.
func (p *Platform) endpoints(ctx context.Context, svc, sel string, rev int) (want, have map[string]bool, err error) {
	pods, err := p.c.Clientset.CoreV1().Pods(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, nil, err
	}
	want = map[string]bool{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		if pod.DeletionTimestamp == nil && podReady(pod) && pod.Status.PodIP != "" && pod.Annotations[AnnotationRev] == strconv.Itoa(rev) {
			want[pod.Status.PodIP] = true
		}
	}
	slices, err := p.c.Clientset.DiscoveryV1().EndpointSlices(p.c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + svc})
	if err != nil {
		return nil, nil, err
	}
	have = map[string]bool{}
	for _, s := range slices.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				have[a] = true
			}
		}
	}
	return want, have, nil
}

func countMissing(want, have map[string]bool) int {
	n := 0
	for ip := range want {
		if !have[ip] {
			n++
		}
	}
	return n
}
