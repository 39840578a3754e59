package k8s

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/rollout"
)

// StatusView is what `aideploy status --target k8s` shows, read once.
type StatusView struct {
	Service   string        `json:"service"`
	Namespace string        `json:"namespace"`
	Active    rollout.Color `json:"active,omitempty"`
	Preview   rollout.Color `json:"preview,omitempty"`
	Colors    []ColorView   `json:"colors"`
	// Traffic says how a rollout moves traffic: through the gateway or by the Service selector.
	Traffic *TrafficView `json:"traffic,omitempty"`
	HPA     *HPAView     `json:"hpa,omitempty"`
	// ScaledObject is the autoscaler instead of HPA with autoscaling.engine keda.
	ScaledObject *ScaledObjectView `json:"scaledObject,omitempty"`
	Prewarm      *PrewarmRecord    `json:"prewarm,omitempty"`
	// Restorer is the CronJob that puts the prewarmed floor back, if any,
	// and RestoreAt when, if known.
	Restorer  string     `json:"restorer,omitempty"`
	RestoreAt *time.Time `json:"restoreAt,omitempty"`
	// restoreUnknown is set when the CronJobs could not be read.
	restoreUnknown bool
	Last           *rollout.Journal `json:"last,omitempty"`
}

// ColorView is one colour's Deployment and its ReplicaSets.
type ColorView struct {
	Color    rollout.Color `json:"color"`
	Revision int           `json:"revision"`
	Image    string        `json:"image"`
	Desired  int32         `json:"desired"`
	Ready    int32         `json:"ready"`
	// WarmUntil is when a retired colour kept warm for rollback is scaled down.
	WarmUntil   *time.Time `json:"warmUntil,omitempty"`
	ReplicaSets []RSView   `json:"replicaSets"`
}

// RSView is one ReplicaSet and its pods.
type RSView struct {
	Name string    `json:"name"`
	Pods []PodView `json:"pods"`
}

// PodView is one pod.
type PodView struct {
	Name     string `json:"name"`
	Status   string `json:"status"`
	Ready    bool   `json:"ready"`
	GPUs     int64  `json:"gpus"`
	Node     string `json:"node,omitempty"`
	Restarts int32  `json:"restarts,omitempty"`
	// Reason says why the scheduler cannot place the pod (a missing claim, no GPU, a taint).
	Reason string `json:"reason,omitempty"`
}

// HPAView is the autoscaler's floor, ceiling and count.
type HPAView struct {
	Target  string `json:"target"`
	Min     int32  `json:"min"`
	Max     int32  `json:"max"`
	Current int32  `json:"current"`
	Desired int32  `json:"desired"`
}

// ReadStatus reads the objects of service svc into a StatusView.
func (c *Client) ReadStatus(ctx context.Context, svc string) (StatusView, error) {
	v := StatusView{Service: svc, Namespace: c.Namespace}
	var err error
	if v.Active, err = c.ActiveColor(ctx, svc); err != nil {
		return v, err
	}
	if v.Preview, err = c.ActiveColor(ctx, PreviewName(svc)); err != nil {
		return v, err
	}
	p := &Platform{c: c, name: svc}
	if _, js, err := p.journals(ctx); err != nil {
		return v, err
	} else if len(js) > 0 {
		v.Last = &js[0]
	}
	for _, col := range []rollout.Color{rollout.Blue, rollout.Green} {
		in, ok, err := p.instance(ctx, col)
		if err != nil {
			return v, err
		}
		if !ok {
			continue
		}
		cv := ColorView{Color: col, Revision: in.Revision, Image: in.Image, Desired: int32(in.Running)}
		if d, err := c.Clientset.AppsV1().Deployments(c.Namespace).Get(ctx, ColorName(svc, col), metav1.GetOptions{}); err == nil {
			if until, ok := warmUntil(d.Annotations, in.Revision); ok && in.Running > 0 && col != v.Active {
				cv.WarmUntil = &until
			}
		}
		sel := LabelName + "=" + svc + "," + LabelColor + "=" + string(col)
		rss, err := c.Clientset.AppsV1().ReplicaSets(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return v, fmt.Errorf("listing ReplicaSets: %w", err)
		}
		pods, err := c.Clientset.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return v, fmt.Errorf("listing pods: %w", err)
		}
		for _, rs := range rss.Items {
			if rs.Status.Replicas == 0 && (rs.Spec.Replicas == nil || *rs.Spec.Replicas == 0) {
				continue
			}
			rv := RSView{Name: rs.Name}
			for i := range pods.Items {
				pod := &pods.Items[i]
				if len(pod.OwnerReferences) == 0 || pod.OwnerReferences[0].UID != rs.UID {
					continue
				}
				pv := PodView{Name: pod.Name, Status: string(pod.Status.Phase), Ready: podReady(pod), GPUs: PodGPUs(&pod.Spec), Node: pod.Spec.NodeName}
				for _, cs := range pod.Status.ContainerStatuses {
					pv.Restarts += cs.RestartCount
					if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
						pv.Status = cs.State.Waiting.Reason
					}
				}
				if reason, ok := SchedulingReason(pod); ok {
					pv.Status, pv.Reason = "Unschedulable", reason
				}
				if pv.Ready {
					cv.Ready++
				}
				rv.Pods = append(rv.Pods, pv)
			}
			sort.Slice(rv.Pods, func(a, b int) bool { return rv.Pods[a].Name < rv.Pods[b].Name })
			cv.ReplicaSets = append(cv.ReplicaSets, rv)
		}
		v.Colors = append(v.Colors, cv)
	}
	hpa, err := c.Clientset.AutoscalingV2().HorizontalPodAutoscalers(c.Namespace).Get(ctx, svc, metav1.GetOptions{})
	switch {
	case err == nil:
		h := &HPAView{Target: hpa.Spec.ScaleTargetRef.Name, Max: hpa.Spec.MaxReplicas, Current: hpa.Status.CurrentReplicas, Desired: hpa.Status.DesiredReplicas, Min: 1}
		if hpa.Spec.MinReplicas != nil {
			h.Min = *hpa.Spec.MinReplicas
		}
		v.HPA = h
		if v.Prewarm, err = ReadPrewarm(hpa); err != nil {
			return v, err
		}
	case apierrors.IsNotFound(err):
		// With autoscaling.engine keda the autoscaler is KEDA's ScaledObject.
		if v.ScaledObject, v.Prewarm, err = c.readScaledObject(ctx, svc); err != nil {
			return v, err
		}
	default:
		return v, fmt.Errorf("reading HPA %s: %w", svc, err)
	}
	if v.Prewarm != nil {
		v.Restorer, v.RestoreAt, err = c.restorer(ctx, svc)
		switch {
		case apierrors.IsForbidden(err):
			// Without the right to list CronJobs, status says nothing of the restore.
			v.restoreUnknown = true
		case err != nil:
			return v, err
		}
	}
	return v, nil
}

// PrintStatus writes v as a tree.
func PrintStatus(w io.Writer, v StatusView) {
	fmt.Fprintf(w, "Name:       %s\n", v.Service)
	fmt.Fprintf(w, "Namespace:  %s\n", v.Namespace)
	fmt.Fprintf(w, "Active:     %s\n", orNone(string(v.Active)))
	fmt.Fprintf(w, "Preview:    %s\n", orNone(string(v.Preview)))
	if v.Traffic != nil {
		fmt.Fprintf(w, "Traffic:    %s\n", v.Traffic)
	}
	if h := v.HPA; h != nil {
		fmt.Fprintf(w, "HPA:        %s, floor %d, ceiling %d, current %d, desired %d\n", h.Target, h.Min, h.Max, h.Current, h.Desired)
	}
	if so := v.ScaledObject; so != nil {
		fmt.Fprintf(w, "KEDA:       %s\n", so)
	}
	if p := v.Prewarm; p != nil {
		until := "until aideploy prewarm --restore"
		if !p.Until.IsZero() {
			until = "until " + p.Until.UTC().Format("2006-01-02 15:04 MST")
		}
		restore := ""
		switch {
		case v.RestoreAt != nil:
			restore = "; CronJob " + v.Restorer + " restores it at " + v.RestoreAt.UTC().Format("2006-01-02 15:04 MST")
		case v.Restorer != "":
			restore = "; CronJob " + v.Restorer + " restores it"
		case !p.Until.IsZero() && !v.restoreUnknown:
			restore = "; nothing restores it by itself: run aideploy prewarm --restore"
		}
		fmt.Fprintf(w, "Prewarm:    floor %d since %s, %s (then %d–%d)%s\n", p.Replicas, p.Since.UTC().Format("2006-01-02 15:04 MST"), until, p.MinReplicas, p.MaxReplicas, restore)
	}
	if j := v.Last; j != nil {
		line := fmt.Sprintf("%s to %s %s", j.Op, j.To, j.Status)
		if j.Status == rollout.StatusRunning {
			line += " at step " + string(j.Step)
		}
		if j.Reason != "" {
			line += ": " + j.Reason
		}
		fmt.Fprintf(w, "Last:       %s\n", line)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, v.Service)
	for i, c := range v.Colors {
		last := i == len(v.Colors)-1
		var tags []string
		if c.Color == v.Active {
			tags = append(tags, "active")
		}
		if c.Color == v.Preview && v.Preview != v.Active {
			tags = append(tags, "preview")
		}
		switch {
		case c.Desired == 0 && c.Color != v.Active:
			tags = append(tags, "scaled down: a rollback to it is a cold start")
		case c.Desired == 0:
			tags = append(tags, "scaled down")
		case c.WarmUntil != nil:
			tags = append(tags, "kept warm for rollback until "+c.WarmUntil.UTC().Format("2006-01-02 15:04 MST"))
		}
		tag := ""
		if len(tags) > 0 {
			tag = " (" + strings.Join(tags, ", ") + ")"
		}
		fmt.Fprintf(w, "%s%s r%d %s  %d/%d ready%s\n", branch(last), c.Color, c.Revision, c.Image, c.Ready, c.Desired, tag)
		for k, rs := range c.ReplicaSets {
			rlast := k == len(c.ReplicaSets)-1
			fmt.Fprintf(w, "%s%sReplicaSet %s\n", stem(last), branch(rlast), rs.Name)
			for m, p := range rs.Pods {
				mark := "✖"
				if p.Ready {
					mark = "✔"
				}
				info := fmt.Sprintf("gpu:%d", p.GPUs)
				if p.Node != "" {
					info += " node:" + p.Node
				}
				if p.Restarts > 0 {
					info += fmt.Sprintf(" restarts:%d", p.Restarts)
				}
				if p.Reason != "" {
					info += "  " + p.Reason
				}
				fmt.Fprintf(w, "%s%s%s%s %s %s  %s\n", stem(last), stem(rlast), branch(m == len(rs.Pods)-1), mark, p.Name, p.Status, info)
			}
		}
	}
}

func branch(last bool) string {
	if last {
		return "└── "
	}
	return "├── "
}

func stem(last bool) string {
	if last {
		return "    "
	}
	return "│   "
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
