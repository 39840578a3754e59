package render

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
)

// k8sObjects decodes every rendered manifest strictly (unknown or duplicate
// fields fail) into client-go's typed objects.
type k8sObjects struct {
	deploy  *appsv1.Deployment
	service *corev1.Service
	hpa     *autoscalingv2.HorizontalPodAutoscaler
	pdb     *policyv1.PodDisruptionBudget
	pvc     *corev1.PersistentVolumeClaim
	keda    *scaledObject
}

// scaledObject is the part of KEDA's ScaledObject these checks read (KEDA's
// Go types are not a dependency); the API server checks the whole object
// against KEDA's CRD in the dry-run tests.
type scaledObject struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ScaleTargetRef  struct{ APIVersion, Kind, Name string } `json:"scaleTargetRef"`
		MinReplicaCount int32                                   `json:"minReplicaCount"`
		MaxReplicaCount int32                                   `json:"maxReplicaCount"`
		Advanced        struct {
			HorizontalPodAutoscalerConfig struct {
				Behavior autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior"`
			} `json:"horizontalPodAutoscalerConfig"`
		} `json:"advanced"`
		Triggers []struct {
			Type       string            `json:"type"`
			Name       string            `json:"name"`
			MetricType string            `json:"metricType"`
			Metadata   map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

func decodeK8s(t *testing.T, files []File) k8sObjects {
	t.Helper()
	var objs k8sObjects
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "k8s/") {
			continue
		}
		var meta struct{ APIVersion, Kind string }
		if err := yaml.Unmarshal(f.Data, &meta); err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		var into any
		switch gvk := meta.APIVersion + "/" + meta.Kind; gvk {
		case "apps/v1/Deployment":
			objs.deploy = &appsv1.Deployment{}
			into = objs.deploy
		case "v1/Service":
			objs.service = &corev1.Service{}
			into = objs.service
		case "autoscaling/v2/HorizontalPodAutoscaler":
			objs.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
			into = objs.hpa
		case "v1/PersistentVolumeClaim":
			objs.pvc = &corev1.PersistentVolumeClaim{}
			into = objs.pvc
		case "keda.sh/v1alpha1/ScaledObject":
			objs.keda = &scaledObject{}
			into = objs.keda
		case "policy/v1/PodDisruptionBudget":
			objs.pdb = &policyv1.PodDisruptionBudget{}
			into = objs.pdb
		default:
			t.Fatalf("%s: unexpected object %s", f.Path, gvk)
		}
		if err := yaml.UnmarshalStrict(f.Data, into); err != nil {
			t.Fatalf("%s does not decode strictly into %T: %v", f.Path, into, err)
		}
	}
	if objs.deploy == nil || objs.service == nil || objs.pdb == nil {
		t.Fatalf("missing Deployment, Service or PodDisruptionBudget: %+v", objs)
	}
	return objs
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := loadTestConfig(t, name)
			objs := decodeK8s(t, renderTest(t, name, Kubernetes))
			d := objs.deploy
			pod := d.Spec.Template.Spec
			c := pod.Containers[0]
			check := func(ok bool, format string, args ...any) {
				t.Helper()
				if !ok {
					t.Errorf(format, args...)
				}
			}
			want := map[string]string{"app.kubernetes.io/name": cfg.Name, "app.kubernetes.io/managed-by": "aideploy"}
			for k, v := range want {
				check(d.Labels[k] == v && d.Spec.Template.Labels[k] == v && objs.service.Labels[k] == v, "label %s=%s missing somewhere", k, v)
			}
			check(d.Spec.Selector.MatchLabels["app.kubernetes.io/name"] == cfg.Name, "selector %v", d.Spec.Selector.MatchLabels)
			check(objs.service.Spec.Selector["app.kubernetes.io/name"] == cfg.Name, "service selector %v", objs.service.Spec.Selector)
			check(c.Image == cfg.Image, "image %q", c.Image)

			gpu := corev1.ResourceName("nvidia.com/gpu")
			req, lim := c.Resources.Requests[gpu], c.Resources.Limits[gpu]
			check(req.Cmp(lim) == 0, "GPU request %s != limit %s", req.String(), lim.String())
			check(req.Value() == int64(cfg.Resources.GPUs), "GPU request %s, want %d", req.String(), cfg.Resources.GPUs)
			memReq, memLim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
			check(memReq.Value() == int64(cfg.Resources.Memory), "memory request %s, want %s", memReq.String(), cfg.Resources.Memory)
			check(memLim.Cmp(memReq) >= 0, "memory limit %s below request %s", memLim.String(), memReq.String())
			cpuReq := c.Resources.Requests[corev1.ResourceCPU]
			check(cpuReq.Cmp(resource.MustParse(cfg.Resources.CPU)) == 0, "cpu request %s, want %s", cpuReq.String(), cfg.Resources.CPU)

			sp, lp, rp := c.StartupProbe, c.LivenessProbe, c.ReadinessProbe
			check(sp != nil && lp != nil && rp != nil, "a probe is missing")
			budget := cfg.Startup.Budget.Seconds()
			check(int64(sp.FailureThreshold)*int64(sp.PeriodSeconds) >= budget, "startupProbe covers %d×%ds, budget %ds", sp.FailureThreshold, sp.PeriodSeconds, budget)
			check(sp.HTTPGet.Path == cfg.Health.Path, "startupProbe path %q", sp.HTTPGet.Path)
			check(lp.HTTPGet.Path == cfg.Health.Path && rp.HTTPGet.Path == cfg.Health.ReadyPath, "liveness %q readiness %q", lp.HTTPGet.Path, rp.HTTPGet.Path)
			check(slices.Equal(c.Args, cfg.Args), "args %q, want %q", c.Args, cfg.Args)
			check(len(c.Command) == 0, "command %q overrides the image's entrypoint", c.Command)
			check(lp.InitialDelaySeconds == 0, "liveness has a fixed initialDelaySeconds (%d): the startup probe replaces it", lp.InitialDelaySeconds)

			psc, csc := pod.SecurityContext, c.SecurityContext
			check(psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot, "runAsNonRoot not set")
			check(psc.RunAsUser != nil && *psc.RunAsUser == 1000, "runAsUser not 1000")
			check(psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault, "seccomp not RuntimeDefault")
			check(csc != nil && csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation, "allowPrivilegeEscalation not false")
			check(csc.Capabilities != nil && len(csc.Capabilities.Drop) == 1 && csc.Capabilities.Drop[0] == "ALL", "capabilities not dropped: %+v", csc.Capabilities)

			if cfg.Resources.GPUs > 0 {
				sel := pod.NodeSelector
				if cfg.Resources.GPUProduct != "" {
					check(sel["nvidia.com/gpu.product"] == cfg.Resources.GPUProduct, "nodeSelector %v", sel)
				} else {
					check(sel["nvidia.com/gpu.present"] == "true", "nodeSelector %v", sel)
				}
				check(len(pod.Tolerations) == 1 && pod.Tolerations[0].Key == "nvidia.com/gpu" && pod.Tolerations[0].Operator == corev1.TolerationOpExists && pod.Tolerations[0].Effect == corev1.TaintEffectNoSchedule, "tolerations %+v", pod.Tolerations)
			} else {
				check(len(pod.NodeSelector) == 0 && len(pod.Tolerations) == 0, "CPU-only pod has GPU scheduling: %v %v", pod.NodeSelector, pod.Tolerations)
				_, has := c.Resources.Limits[gpu]
				check(!has, "CPU-only pod limits nvidia.com/gpu")
			}
			check(len(pod.TopologySpreadConstraints) == 1 && pod.TopologySpreadConstraints[0].TopologyKey == "kubernetes.io/hostname", "topology spread %+v", pod.TopologySpreadConstraints)

			ann := d.Spec.Template.Annotations
			if cfg.Preset().Metrics {
				check(ann["prometheus.io/scrape"] == "true" && ann["prometheus.io/port"] == fmt.Sprint(cfg.Port) && ann["prometheus.io/path"] == "/metrics", "scrape annotations %v", ann)
			} else {
				check(ann["prometheus.io/scrape"] == "false", "%s serves no metrics but is scraped: %v", cfg.Server, ann)
			}
			checkModelVolume(t, cfg, objs)
			var shm *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == "dshm" {
					shm = &pod.Volumes[i]
				}
			}
			if cfg.Resources.SharedMemory > 0 {
				check(shm != nil && shm.EmptyDir != nil && shm.EmptyDir.Medium == corev1.StorageMediumMemory && shm.EmptyDir.SizeLimit.Value() == int64(cfg.Resources.SharedMemory), "/dev/shm %+v", shm)
			} else {
				check(shm == nil, "a /dev/shm volume without resources.sharedMemory")
			}
			for _, e := range cfg.Env {
				for _, ce := range c.Env {
					if ce.Name == e.Name && (e.SecretRef != nil || e.FromEnv != "") {
						check(ce.Value == "" && ce.ValueFrom != nil && ce.ValueFrom.SecretKeyRef != nil, "secret %s is not a secretKeyRef: %+v", e.Name, ce)
					}
				}
			}

			if cfg.Autoscaling.Enabled && cfg.Autoscaling.Engine == config.EngineKEDA {
				check(objs.hpa == nil, "an HPA rendered beside KEDA's ScaledObject, which owns one")
				check(d.Spec.Replicas == nil, "replicas set although KEDA owns them")
				checkScaledObject(t, objs.keda, cfg)
			} else if !cfg.Autoscaling.Enabled {
				check(objs.hpa == nil && objs.keda == nil, "autoscaler rendered while autoscaling is disabled")
				check(d.Spec.Replicas != nil && int(*d.Spec.Replicas) == cfg.Replicas, "replicas %v, want %d", d.Spec.Replicas, cfg.Replicas)
			} else {
				check(objs.hpa != nil, "no HPA while autoscaling is enabled")
				check(d.Spec.Replicas == nil, "replicas set although the HPA owns them")
				checkHPA(t, objs.hpa, cfg.Autoscaling.MinReplicas, cfg.Autoscaling.MaxReplicas, cfg.Autoscaling.RequestsPerSecond, cfg.Autoscaling.CPUTarget)
				checkInFlight(t, objs.hpa, cfg)
			}
			pdb := objs.pdb.Spec
			check(pdb.MaxUnavailable != nil && pdb.MaxUnavailable.IntValue() == 1 && pdb.MinAvailable == nil, "PDB %+v", pdb)
		})
	}
}

// checkModelVolume checks the model volume against model.volume: a claim that
// is rendered (or named), a host folder, scratch space or nothing; read-only
// weights for custom, a writable cache for a preset.
func checkModelVolume(t *testing.T, cfg *config.Config, objs k8sObjects) {
	t.Helper()
	pod := objs.deploy.Spec.Template.Spec
	var model *corev1.Volume
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == "model" {
			model = &pod.Volumes[i]
		}
	}
	var mount *corev1.VolumeMount
	for i, m := range pod.Containers[0].VolumeMounts {
		if m.Name == "model" {
			mount = &pod.Containers[0].VolumeMounts[i]
		}
	}
	readOnly := cfg.Preset().Dockerfile
	if cfg.Model.Volume == config.VolumeNone {
		if model != nil || mount != nil || objs.pvc != nil {
			t.Errorf("model.volume none, but a model volume is rendered: %+v %+v %+v", model, mount, objs.pvc)
		}
		return
	}
	if model == nil || mount == nil || mount.MountPath != cfg.Model.Path || mount.ReadOnly != readOnly {
		t.Fatalf("model volume %+v mounted %+v, want %s at %s read-only %v", model, mount, cfg.Model.Volume, cfg.Model.Path, readOnly)
	}
	switch cfg.Model.Volume {
	case config.VolumePVC:
		c := model.PersistentVolumeClaim
		if c == nil || c.ReadOnly != readOnly {
			t.Fatalf("model volume is not a claim with read-only %v: %+v", readOnly, model)
		}
		if cfg.Model.ClaimName != "" {
			if c.ClaimName != cfg.Model.ClaimName || objs.pvc != nil {
				t.Errorf("claim %q (rendered %v), want the existing %q and none rendered", c.ClaimName, objs.pvc != nil, cfg.Model.ClaimName)
			}
			return
		}
		// The claim the Deployment names is the one rendered beside it.
		if objs.pvc == nil || objs.pvc.Name != c.ClaimName {
			t.Fatalf("the Deployment mounts claim %q, which is not rendered (%+v)", c.ClaimName, objs.pvc)
		}
		size := objs.pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if size.Value() != int64(cfg.Model.Size) || len(objs.pvc.Spec.AccessModes) != 1 || string(objs.pvc.Spec.AccessModes[0]) != cfg.Model.AccessMode {
			t.Errorf("claim %+v, want %s %s", objs.pvc.Spec, cfg.Model.Size, cfg.Model.AccessMode)
		}
		if sc := objs.pvc.Spec.StorageClassName; (sc == nil) != (cfg.Model.StorageClass == "") || sc != nil && *sc != cfg.Model.StorageClass {
			t.Errorf("storage class %v, want %q", sc, cfg.Model.StorageClass)
		}
	case config.VolumeHostPath:
		if model.HostPath == nil || model.HostPath.Path != cfg.Model.HostPath {
			t.Errorf("model volume %+v, want hostPath %s", model, cfg.Model.HostPath)
		}
	case config.VolumeEmptyDir:
		if model.EmptyDir == nil {
			t.Errorf("model volume %+v, want an emptyDir", model)
		}
	}
	if objs.pvc != nil && cfg.Model.Volume != config.VolumePVC {
		t.Errorf("a claim is rendered for model.volume %s", cfg.Model.Volume)
	}
}

// checkInFlight checks the HPA scales on the preset server's own gauge of
// running requests exactly when requestsInFlight asks for it.
func checkInFlight(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, cfg *config.Config) {
	t.Helper()
	got := false
	for _, m := range h.Spec.Metrics {
		if m.Type == autoscalingv2.PodsMetricSourceType && m.Pods.Metric.Name == cfg.Preset().BusyMetric {
			got = m.Pods.Target.AverageValue.Value() == int64(cfg.Autoscaling.RequestsInFlight)
		}
	}
	if want := cfg.Autoscaling.RequestsInFlight > 0; got != want {
		t.Errorf("HPA metrics %+v: want %s at %d per pod: %v", h.Spec.Metrics, cfg.Preset().BusyMetric, cfg.Autoscaling.RequestsInFlight, want)
	}
}

func checkHPA(t *testing.T, h *autoscalingv2.HorizontalPodAutoscaler, min, max, rps, cpu int) {
	t.Helper()
	s := h.Spec
	if len(s.Metrics) == 0 {
		// The API server would fill in CPU 80%, which says nothing about a GPU model.
		t.Errorf("the HPA names no metric")
	}
	if s.MinReplicas == nil || int(*s.MinReplicas) != min || int(s.MaxReplicas) != max {
		t.Errorf("HPA replicas %v..%d, want %d..%d", s.MinReplicas, s.MaxReplicas, min, max)
	}
	var gotRPS, gotCPU bool
	for _, m := range s.Metrics {
		switch {
		case m.Type == autoscalingv2.PodsMetricSourceType && m.Pods.Metric.Name == "http_requests_per_second":
			gotRPS = m.Pods.Target.Type == autoscalingv2.AverageValueMetricType && m.Pods.Target.AverageValue.Value() == int64(rps)
		case m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource.Name == corev1.ResourceCPU:
			gotCPU = *m.Resource.Target.AverageUtilization == int32(cpu)
		}
	}
	if gotRPS != (rps > 0) || gotCPU != (cpu > 0) {
		t.Errorf("HPA metrics %+v: want requests-per-second %v (%d), cpu %v", s.Metrics, rps > 0, rps, cpu > 0)
	}
	b := s.Behavior
	if b == nil || b.ScaleUp == nil || b.ScaleDown == nil || *b.ScaleUp.StabilizationWindowSeconds != 0 || *b.ScaleDown.StabilizationWindowSeconds < 300 {
		t.Errorf("HPA behaviour %+v: want immediate scale-up and a slow scale-down", b)
	}
}

// TestKubernetesStrictDecodeCatchesMistakes proves the strict decoding is strict.
func TestKubernetesStrictDecodeCatchesMistakes(t *testing.T) {
	t.Parallel()
	bad := []string{
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicaz: 3\n",
		"apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 3\n  replicas: 4\n",
	}
	for _, doc := range bad {
		if err := yaml.UnmarshalStrict([]byte(doc), &appsv1.Deployment{}); err == nil {
			t.Errorf("strict decoding accepted %q", doc)
		}
	}
}
