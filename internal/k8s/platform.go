package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
)

// keepJournals bounds the history kept in the state annotation.
const keepJournals = 20

// annotationHolder on the Lease says who holds it, as JSON.
const annotationHolder = "aideploy.dev/holder"

// Options configure a Platform.
type Options struct {
	// Config is aideploy.yaml; its Kubernetes objects are rendered per colour.
	Config *config.Config
	// Source names aideploy.yaml in the rendered headers.
	Source string
	// Mutate, when set, edits the rendered objects before they are applied (tests drop volumes, add annotations).
	Mutate func(objs []*unstructured.Unstructured)
	// ReadinessGrace is how long a started container may stay unready before the colour is declared failed; 0 means 10s.
	ReadinessGrace time.Duration
	// Logf prints what the platform does beyond the rollout steps; nil prints nothing.
	Logf func(format string, args ...any)
	// LeaseDuration is how long the rollout Lease holds without renewal; 0 means DefaultLeaseDuration.
	LeaseDuration time.Duration
	// Now is the clock the Lease is judged by; nil means time.Now.
	Now func() time.Time
}

// Platform runs a service's blue and green Deployments behind an active and a
// preview Service; it implements rollout.Platform.
type Platform struct {
	c    *Client
	o    Options
	name string
	// active is the colour the last Switch selected, for Stats.
	active rollout.Color
	// stopRenew ends the renewal of the Lease this platform holds, and waits for it; nil when none runs.
	stopRenew func()

	mu sync.Mutex // guards what follows
	// traffic is how traffic moves (gateway or Service selector), read once.
	traffic *TrafficView
	// proxy reaches the gateway pods through the API server, made once.
	proxy *http.Client
	// token is the gateway's admin token, read once.
	token string
	// flipped is when the last switch began swapping the gateway pods' targets.
	flipped time.Time
}

var _ rollout.Platform = (*Platform)(nil)

// NewPlatform returns the Kubernetes platform of the service of o.Config.
func NewPlatform(c *Client, o Options) *Platform {
	if o.ReadinessGrace <= 0 {
		o.ReadinessGrace = 10 * time.Second
	}
	if o.LeaseDuration <= 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}

	return &Platform{c: c, o: o, name: o.Config.Name}
}

func (p *Platform) logf(format string, args ...any) {
	if p.o.Logf != nil {
		p.o.Logf(format, args...)
	}
}

func (p *Platform) lockName() string  { return p.name + "-rollout" }
func (p *Platform) stateName() string { return p.name + "-rollout" }

// journals reads the history kept on the ConfigMap <svc>-rollout.
func (p *Platform) journals(ctx context.Context) (*corev1.ConfigMap, []rollout.Journal, error) {
	cm, err := p.c.Clientset.CoreV1().ConfigMaps(p.c.Namespace).Get(ctx, p.stateName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading ConfigMap %s: %w", p.stateName(), err)
	}
	var js []rollout.Journal
	if s := cm.Annotations[AnnotationState]; s != "" {
		if err := json.Unmarshal([]byte(s), &js); err != nil {
			return nil, nil, fmt.Errorf("reading the rollout history on ConfigMap %s: %w", p.stateName(), err)
		}
	}
	return cm, js, nil
}

// Record stores j in the history annotation, replacing the entry with its ID.
func (p *Platform) Record(ctx context.Context, j rollout.Journal) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cm, js, err := p.journals(ctx)
		if err != nil {
			return err
		}
		out := []rollout.Journal{j}
		for _, o := range js {
			if o.ID != j.ID {
				out = append(out, o)
			}
		}
		sort.SliceStable(out, func(a, b int) bool { return out[a].Started.After(out[b].Started) })
		if len(out) > keepJournals {
			out = out[:keepJournals]
		}
		b, err := json.Marshal(out)
		if err != nil {
			return fmt.Errorf("recording the rollout: %w", err)
		}
		cms := p.c.Clientset.CoreV1().ConfigMaps(p.c.Namespace)
		if cm == nil {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: p.stateName(),
				Labels:      map[string]string{LabelName: p.name, "app.kubernetes.io/managed-by": FieldManager},
				Annotations: map[string]string{AnnotationState: string(b)}}}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), p.stateName(), err)
			}
			return err
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationState] = string(b)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
}

// Current reads the history, the two colours' Deployments and the active
// Service, and adopts what serves as the cluster shows it: a Deployment that
// `aideploy apply`, an earlier rollout or kubectl made is what a rollout
// starts from, whatever the history says.
func (p *Platform) Current(ctx context.Context) (rollout.State, error) {
	var st rollout.State
	_, js, err := p.journals(ctx)
	if err != nil {
		return st, err
	}
	st.Journals = js
	for _, c := range []rollout.Color{rollout.Blue, rollout.Green} {
		in, ok, err := p.instance(ctx, c)
		if err != nil {
			return st, err
		}
		if ok {
			st.Instances = append(st.Instances, in)
		}
	}
	sort.Slice(st.Instances, func(a, b int) bool { return st.Instances[a].Revision > st.Instances[b].Revision })
	selected, err := p.c.ActiveColor(ctx, p.name)
	if err != nil {
		return st, err
	}
	st.LiveKnown, st.Live = true, adopt(selected, st.Instances)
	if st.Floor, err = p.floor(ctx, st.Live); err != nil {
		return st, err
	}
	return st, nil
}

// instance reads what colour c's Deployment runs.
func (p *Platform) instance(ctx context.Context, c rollout.Color) (rollout.Instance, bool, error) {
	d, err := p.c.Clientset.AppsV1().Deployments(p.c.Namespace).Get(ctx, ColorName(p.name, c), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return rollout.Instance{}, false, nil
	}
	if err != nil {
		return rollout.Instance{}, false, fmt.Errorf("reading Deployment %s: %w", ColorName(p.name, c), err)
	}
	in, err := liveInstance(d, c)
	return in, err == nil, err
}
