package k8s

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestConflictFields reads the fields out of the API server's answer to a
// server-side apply that would overwrite another manager's fields.
func TestConflictFields(t *testing.T) {
	t.Parallel()
	se := &apierrors.StatusError{ErrStatus: metav1.Status{Status: metav1.StatusFailure, Code: 409, Reason: metav1.StatusReasonConflict,
		Message: `Apply failed with 1 conflict: conflict with "kubectl-edit" using policy/v1: .spec.maxUnavailable`,
		Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{Type: metav1.CauseTypeFieldManagerConflict,
			Message: `conflict with "kubectl-edit" using policy/v1`, Field: ".spec.maxUnavailable"}}}}}
	got, ok := conflictFields(fmt.Errorf("applying PodDisruptionBudget chat: %w", se))
	if !ok || len(got) != 1 || got[0] != `.spec.maxUnavailable (conflict with "kubectl-edit" using policy/v1)` {
		t.Fatalf("conflictFields = %q, %v", got, ok)
	}
	if _, ok := conflictFields(errors.New("connection refused")); ok {
		t.Error("a plain error read as a conflict")
	}
	msg := (&ConflictError{Fields: []string{"PodDisruptionBudget/chat " + got[0]}}).Error()
	if !strings.Contains(msg, "--force-conflicts") || !strings.Contains(msg, "nothing was applied") || !strings.Contains(msg, "kubectl-edit") {
		t.Errorf("message %q says neither what nor what to do", msg)
	}
}
