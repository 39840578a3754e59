package preflight

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

func storageClass(name, provisioner string, isDefault bool) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: provisioner}
	if isDefault {
		sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	}
	return sc
}

// The rendered model claim asks for ReadWriteMany by default so that replicas
// on several nodes share the weights; the default classes of the major clouds
// provision disks that attach to one node, and such a claim stays Pending.
func TestModelStorage(t *testing.T) {
	t.Parallel()
	gp3 := storageClass("gp3", "ebs.csi.aws.com", true)
	efs := storageClass("efs", "efs.csi.aws.com", false)
	rwx := &ClaimSpec{AccessMode: "ReadWriteMany"}
	for _, tt := range []struct {
		name     string
		claim    *ClaimSpec
		classes  []runtime.Object
		want     Status
		measured string
		remedy   string
	}{
		{"no claim rendered", nil, nil, Skip, "", ""},
		{"shared claim on a block disk default", rwx, []runtime.Object{gp3, efs}, Fail,
			"storage class gp3 (ebs.csi.aws.com) for a ReadWriteMany claim: its volumes attach to one node at a time", "model.storageClass to a shared-file class"},
		{"shared claim on a named file class", &ClaimSpec{StorageClass: "efs", AccessMode: "ReadWriteMany"}, []runtime.Object{gp3, efs}, Pass,
			"storage class efs (efs.csi.aws.com) for a ReadWriteMany claim", ""},
		{"one-node claim on a block disk", &ClaimSpec{AccessMode: "ReadWriteOnce"}, []runtime.Object{gp3}, Pass,
			"storage class gp3 (ebs.csi.aws.com) for a ReadWriteOnce claim", ""},
		{"no default class", rwx, []runtime.Object{efs}, Warn, "no default storage class (classes: efs)", "set model.storageClass"},
		{"a named class that is not there", &ClaimSpec{StorageClass: "nfs", AccessMode: "ReadWriteMany"}, []runtime.Object{gp3}, Warn,
			`storage class "nfs" not found (classes: gp3)`, "kubectl get storageclass"},
		{"a bound claim, whatever the class", &ClaimSpec{Name: "chat-models", Namespace: "serving", AccessMode: "ReadWriteMany"}, []runtime.Object{gp3, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: "chat-models", Namespace: "serving"}, Spec: corev1.PersistentVolumeClaimSpec{VolumeName: "pv-nfs"},
			Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound}}}, Pass, "claim chat-models bound to volume pv-nfs", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &runner{opts: Options{Req: Requirements{ModelClaim: tt.claim}}}
			got := r.checkModelStorage(context.Background(), fake.NewClientset(tt.classes...))
			if len(got) != 1 || got[0].Status != tt.want || !strings.Contains(got[0].Measured, tt.measured) || !strings.Contains(got[0].Remedy, tt.remedy) {
				t.Errorf("got %+v, want %s with %q and a remedy with %q", got, tt.want, tt.measured, tt.remedy)
			}
		})
	}
}
