package k8s

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

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
	job := cronJob(RestoreCronJobName(svc), "UTC", due, image, sa, labels,
		[]any{"prewarm", "--target", "k8s", "--name", svc, "--restore"})
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
