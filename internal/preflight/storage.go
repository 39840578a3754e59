package preflight

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ClaimSpec is the model volume's PersistentVolumeClaim that the manifests
// render (model.volume: pvc without model.claimName).
type ClaimSpec struct {
	// Name and Namespace are the claim's, once applied; a bound one passes.
	Name, Namespace string
	// StorageClass is model.storageClass; empty means the cluster's default.
	StorageClass string
	// AccessMode is model.accessMode (ReadWriteMany by default).
	AccessMode string
}

// blockProvisioners provision volumes that attach to one node at a time: a
// ReadWriteMany claim of their classes is never bound and stays Pending with
// every pod that mounts it. Those of the major clouds' default classes, and
// the node-local ones of small clusters.
var blockProvisioners = []string{
	"ebs.csi.aws.com", "kubernetes.io/aws-ebs",
	"pd.csi.storage.gke.io", "kubernetes.io/gce-pd",
	"disk.csi.azure.com", "kubernetes.io/azure-disk",
	"cinder.csi.openstack.org", "kubernetes.io/cinder",
	"dobs.csi.digitalocean.com", "linodebs.csi.linode.com",
	"rancher.io/local-path", "kubernetes.io/no-provisioner", "topolvm.io", "openebs.io/local",
}

// defaultClassAnnotations mark a cluster's default StorageClass.
var defaultClassAnnotations = []string{"storageclass.kubernetes.io/is-default-class", "storageclass.beta.kubernetes.io/is-default-class"}

// checkModelStorage says whether the cluster can bind the model volume's
// claim: its class exists (or the cluster has a default one), and a claim
// shared by replicas on several nodes (ReadWriteMany) does not ask a class
// whose volumes attach to one node at a time. Either way the claim would
// stay Pending, and the rollout would fail at its health step.
func (r *runner) checkModelStorage(ctx context.Context, cs kubernetes.Interface) []Result {
	const id, sub = "k8s.model-storage", "model volume"
	claim := r.opts.Req.ModelClaim
	if claim == nil {
		return []Result{skip(id, sub, "no claim rendered (model.volume is not pvc, or model.claimName names an existing one)")}
	}
	if claim.Name != "" && claim.Namespace != "" {
		pvc, err := cs.CoreV1().PersistentVolumeClaims(claim.Namespace).Get(ctx, claim.Name, metav1.GetOptions{})
		if err == nil && pvc.Status.Phase == corev1.ClaimBound {
			return []Result{pass(id, sub, fmt.Sprintf("claim %s bound to volume %s", claim.Name, pvc.Spec.VolumeName), "a class that can bind the claim")}
		}
	}
	list, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return []Result{warn(id, sub, "listing storage classes: "+firstLine(err), "", "grant list on storageclasses, or check the claim with kubectl get pvc after aideploy apply")}
	}
	names := make([]string, 0, len(list.Items))
	var class *storagev1.StorageClass
	for i, sc := range list.Items {
		names = append(names, sc.Name)
		switch {
		case claim.StorageClass != "" && sc.Name == claim.StorageClass:
			class = &list.Items[i]
		case claim.StorageClass == "" && isDefaultClass(sc):
			class = &list.Items[i]
		}
	}
	sort.Strings(names)
	known := "none"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	if class == nil {
		// Only a volume an administrator created for it can bind the claim
		// now: one may, so this warns.
		if claim.StorageClass != "" {
			return []Result{warn(id, sub, fmt.Sprintf("storage class %q not found (classes: %s)", claim.StorageClass, known), "the class model.storageClass names",
				"set model.storageClass to one of the cluster's classes (kubectl get storageclass); without one, only a volume created for the claim binds it")}
		}
		return []Result{warn(id, sub, fmt.Sprintf("no default storage class (classes: %s)", known), "a class to provision the model claim",
			"set model.storageClass, or model.volume: hostPath (or emptyDir) in aideploy.yaml; without a class, only a volume created for the claim binds it")}
	}
	what := fmt.Sprintf("storage class %s (%s) for a %s claim", class.Name, class.Provisioner, claim.AccessMode)
	if claim.AccessMode == "ReadWriteMany" && slices.Contains(blockProvisioners, class.Provisioner) {
		return []Result{fail(id, sub, what+": its volumes attach to one node at a time", "ReadWriteMany, for replicas on several nodes",
			"set model.storageClass to a shared-file class (EFS, Filestore, Azure Files, NFS), or model.accessMode: ReadWriteOnce with the replicas on one node, or model.volume: hostPath; the claim would stay Pending")}
	}
	return []Result{pass(id, sub, what, "a class that can bind the claim")}
}

func isDefaultClass(sc storagev1.StorageClass) bool {
	for _, a := range defaultClassAnnotations {
		if sc.Annotations[a] == "true" {
			return true
		}
	}
	return false
}
