package k8s

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// annotationDue on the restore CronJob is when it restores the floor, RFC 3339.
const annotationDue = "aideploy.dev/due"

// RestoreCronJobName names the CronJob that puts back the floor of service
// svc's HPA when a prewarm with --for or --until ends.
func RestoreCronJobName(svc string) string { return svc + "-prewarm-restore" }

// ScheduleRestore applies a CronJob that runs image (an aideploy image) as
// "aideploy prewarm --restore" for the HPA svc at the minute after at (UTC),
// with the ServiceAccount and Role it runs as. The restore removes the
// CronJob again, so it fires once although its schedule names a yearly date.
// It returns the minute it is due.
func (c *Client) ScheduleRestore(ctx context.Context, svc string, at time.Time, image string) (time.Time, error) {
	due := at.UTC().Truncate(time.Minute)
	if due.Before(at) {
		due = due.Add(time.Minute)
	}
	sa, labels, objs := prewarmRBAC(svc)
	job := cronJob(RestoreCronJobName(svc), "UTC", due, restoreDeadline, image, sa, labels,
		[]any{"prewarm", "--target", "k8s", "--name", svc, "--restore"})
	job["metadata"].(map[string]any)["annotations"] = map[string]any{annotationDue: due.Format(time.RFC3339)}
	objs = append(objs, job)
	var us []*unstructured.Unstructured
	for _, o := range objs {
		us = append(us, &unstructured.Unstructured{Object: o})
	}
	if _, err := c.Apply(ctx, us, false); err != nil {
		return due, fmt.Errorf("scheduling the restore of HPA %s: %w", svc, err)
	}
	return due, nil
}

// CancelRestore deletes the restore CronJob of svc, and reports whether there was one.
func (c *Client) CancelRestore(ctx context.Context, svc string) (bool, error) {
	background := metav1.DeletePropagationBackground
	err := c.Clientset.BatchV1().CronJobs(c.Namespace).Delete(ctx, RestoreCronJobName(svc), metav1.DeleteOptions{PropagationPolicy: &background})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsNotFound(err):
		return false, nil
	}
	return false, fmt.Errorf("removing the restore CronJob %s: %w", RestoreCronJobName(svc), err)
}

// restorer finds what will restore the floor of svc: the one-off CronJob of
// prewarm --for (with when it is due), or else another prewarm CronJob that
// runs --restore, such as a scheduled event's -end CronJob (due nil). It
// returns "" when there is none.
func (c *Client) restorer(ctx context.Context, svc string) (string, *time.Time, error) {
	sel := LabelName + "=" + svc + ",app.kubernetes.io/component=prewarm,app.kubernetes.io/managed-by=" + FieldManager
	list, err := c.Clientset.BatchV1().CronJobs(c.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return "", nil, fmt.Errorf("listing the prewarm CronJobs of %s: %w", svc, err)
	}
	other := ""
	for _, cj := range list.Items {
		if cj.Name == RestoreCronJobName(svc) {
			if due, err := time.Parse(time.RFC3339, cj.Annotations[annotationDue]); err == nil {
				return cj.Name, &due, nil
			}
			return cj.Name, nil, nil
		}
		for _, ct := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
			if slices.Contains(ct.Args, "--restore") && other == "" {
				other = cj.Name
			}
		}
	}
	return other, nil, nil
}
