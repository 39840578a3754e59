package k8s

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/aideploy/aideploy/internal/rollout"
)

// AnnotationCommand on the rollout ConfigMap (<svc>-rollout, beside the
// history) holds the operator command the running rollout has not read yet,
// as JSON.
const AnnotationCommand = "aideploy.dev/command"

// SendCommand leaves c for the running rollout, replacing an unread command.
func (p *Platform) SendCommand(ctx context.Context, c rollout.Command) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cms := p.c.Clientset.CoreV1().ConfigMaps(p.c.Namespace)
		cm, err := cms.Get(ctx, p.stateName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: p.stateName(),
				Labels:      map[string]string{LabelName: p.name, "app.kubernetes.io/managed-by": FieldManager},
				Annotations: map[string]string{AnnotationCommand: string(b)}}}
			_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: FieldManager})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), p.stateName(), err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if cm.Annotations == nil {
			cm.Annotations = map[string]string{}
		}
		cm.Annotations[AnnotationCommand] = string(b)
		_, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager})
		return err
	})
	if err != nil {
		return fmt.Errorf("leaving the %s command on ConfigMap %s: %w", c.Verb, p.stateName(), err)
	}
	return nil
}

// TakeCommand reads the command left since the last call and clears it; nil
// when none. The update carries the ConfigMap's resourceVersion, so a command
// sent meanwhile is never cleared unread.
func (p *Platform) TakeCommand(ctx context.Context) (*rollout.Command, error) {
	var out *rollout.Command
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		out = nil
		cms := p.c.Clientset.CoreV1().ConfigMaps(p.c.Namespace)
		cm, err := cms.Get(ctx, p.stateName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		s, ok := cm.Annotations[AnnotationCommand]
		if !ok {
			return nil
		}
		delete(cm.Annotations, AnnotationCommand)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: FieldManager}); err != nil {
			return err
		}
		var c rollout.Command
		if err := json.Unmarshal([]byte(s), &c); err != nil {
			return fmt.Errorf("the operator command on ConfigMap %s is not one (%w); send it again with aideploy rollout <verb>", p.stateName(), err)
		}
		out = &c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading operator commands: %w", err)
	}
	return out, nil
}
