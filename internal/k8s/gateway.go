package k8s

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/rollout"
)

// The ways traffic reaches a colour.
const (
	// TrafficGateway: the gateway pods' default pool is switched through
	// their admin API (health-gated, atomic per pod, drained).
	TrafficGateway = "gateway"
	// TrafficSelector: the active Service's selector is switched, for
	// clusters without the gateway (gateway.enabled: false).
	TrafficSelector = "service-selector"
)

// LabelPartOf ties the gateway's objects (and its Redis) to their service.
const LabelPartOf = "app.kubernetes.io/part-of"

// GatewayName is the name of the gateway's Deployment, Service, ConfigMap,
// HPA and PDB of service svc.
func GatewayName(svc string) string { return svc + "-gateway" }

// HeadlessName is the headless Service through which the gateway finds the
// pods of colour c.
func HeadlessName(svc string, c rollout.Color) string { return svc + "-" + string(c) }

// TrafficView says how traffic reaches the service's colours.
type TrafficView struct {
	Mode string `json:"mode"` // gateway or service-selector
	// Gateway is the gateway's Deployment, in gateway mode.
	Gateway string `json:"gateway,omitempty"`
	Pods    int    `json:"pods"`  // gateway pods, terminating ones left out
	Ready   int    `json:"ready"` // of them, ready
	// Note says why the mode is not the configured one.
	Note string `json:"note,omitempty"`
}

func (v TrafficView) String() string {
	switch {
	case v.Mode == TrafficGateway:
		return fmt.Sprintf("gateway (%d pods, %d ready)", v.Pods, v.Ready)
	case v.Note != "":
		return "Service selector (" + v.Note + ")"
	}
	return "Service selector"
}

// ReadTraffic says how a rollout of svc moves traffic: through the gateway
// when it is enabled and its Deployment exists, else by the Service selector.
func (c *Client) ReadTraffic(ctx context.Context, svc string, gatewayEnabled bool) (TrafficView, error) {
	if !gatewayEnabled {
		return TrafficView{Mode: TrafficSelector}, nil
	}
	name := GatewayName(svc)
	_, err := c.Clientset.AppsV1().Deployments(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return TrafficView{Mode: TrafficSelector, Note: "gateway.enabled, but no Deployment " + name + ": aideploy apply creates it"}, nil
	}
	if err != nil {
		return TrafficView{}, fmt.Errorf("reading the gateway's Deployment %s: %w", name, err)
	}
	v := TrafficView{Mode: TrafficGateway, Gateway: name}
	pods, err := c.Clientset.CoreV1().Pods(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelName + "=" + name})
	if err != nil {
		return v, fmt.Errorf("listing the gateway's pods: %w", err)
	}
	for i := range pods.Items {
		if pods.Items[i].DeletionTimestamp != nil {
			continue
		}
		v.Pods++
		if podReady(&pods.Items[i]) {
			v.Ready++
		}
	}
	return v, nil
}

// GatewayManifests renders the gateway's objects of cfg (k8s/gateway) with
// its ConfigMap sending the default pool to colour serving: a gateway pod
// that starts after a rollout (a restart, an HPA scale-up) serves what the
// running ones serve. The Deployment's config hash does not depend on the
// colour, so a switch never rolls the gateway. Nil when the gateway is off.
func GatewayManifests(cfg *config.Config, source string, serving rollout.Color) ([]*unstructured.Unstructured, error) {
	if !cfg.Gateway.OnKubernetes() {
		return nil, nil
	}
	files, err := render.Render(cfg, source, render.KubernetesGateway)
	if err != nil {
		return nil, err
	}
	data := make([][]byte, 0, len(files))
	for _, f := range files {
		data = append(data, f.Data)
	}
	objs, err := Decode(data...)
	if err != nil {
		return nil, err
	}
	if serving == "" {
		serving = rollout.Blue
	}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && o.GetName() == GatewayName(cfg.Name) {
			if err := pointConfigMap(o, cfg, serving); err != nil {
				return nil, err
			}
		}
	}
	return objs, nil
}

// pointConfigMap makes the gateway ConfigMap o's default pool resolve colour c.
func pointConfigMap(o *unstructured.Unstructured, cfg *config.Config, c rollout.Color) error {
	doc, _, _ := unstructured.NestedString(o.Object, "data", "aideploy.yaml")
	port := ":" + strconv.Itoa(cfg.Port)
	rendered := "dns+http://" + HeadlessName(cfg.Name, rollout.Blue) + port
	if !strings.Contains(doc, rendered) {
		return fmt.Errorf("the gateway's ConfigMap %s names no %s target to point at %s; render it again with this version of aideploy", o.GetName(), rendered, c)
	}
	doc = strings.ReplaceAll(doc, rendered, GatewayTarget(cfg, c))
	return unstructured.SetNestedField(o.Object, doc, "data", "aideploy.yaml")
}

// GatewayTarget is the default pool's target for colour c: its headless
// Service, one target per ready pod.
func GatewayTarget(cfg *config.Config, c rollout.Color) string {
	return "dns+http://" + HeadlessName(cfg.Name, c) + ":" + strconv.Itoa(cfg.Port)
}

// GatewayServingManifests renders the gateway's objects of cfg (nil when the
// gateway is off) with its ConfigMap sending traffic to the colour that serves
// now (blue before any rollout), so that apply never switches traffic back.
func (c *Client) GatewayServingManifests(ctx context.Context, cfg *config.Config, source string) ([]*unstructured.Unstructured, error) {
	if !cfg.Gateway.OnKubernetes() {
		return nil, nil
	}
	color, err := c.ActiveColor(ctx, cfg.Name)
	if err != nil {
		return nil, err
	}
	return GatewayManifests(cfg, source, color)
}
