package render

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
)

// gatewayObjects are the rendered gateway objects on Kubernetes, decoded
// strictly (an unknown or duplicate field fails) into client-go's types.
type gatewayObjects struct {
	deploy      *appsv1.Deployment
	configMap   *corev1.ConfigMap
	services    map[string]*corev1.Service
	hpa         *autoscalingv2.HorizontalPodAutoscaler
	pdb         *policyv1.PodDisruptionBudget
	policy      *networkingv1.NetworkPolicy
	redis       *appsv1.StatefulSet
	files, objs int
}

// splitYAML returns each document of a multi-document YAML file.
func splitYAML(t *testing.T, data []byte) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var docs [][]byte
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) > 0 {
			docs = append(docs, doc)
		}
	}
}

func stripComments(doc []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(append(out, l...), '\n')
		}
	}
	return out
}

func decodeGateway(t *testing.T, files []File) gatewayObjects {
	t.Helper()
	g := gatewayObjects{services: map[string]*corev1.Service{}}
	for _, f := range files {
		if !strings.HasPrefix(f.Path, "k8s/gateway/") {
			continue
		}
		g.files++
		for _, doc := range splitYAML(t, f.Data) {
			g.objs++
			var meta struct{ APIVersion, Kind string }
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s: %v", f.Path, err)
			}
			var into any
			switch gvk := meta.APIVersion + "/" + meta.Kind; gvk {
			case "apps/v1/Deployment":
				g.deploy = &appsv1.Deployment{}
				into = g.deploy
			case "v1/ConfigMap":
				g.configMap = &corev1.ConfigMap{}
				into = g.configMap
			case "v1/Service":
				s := &corev1.Service{}
				defer func() { g.services[s.Name] = s }()
				into = s
			case "autoscaling/v2/HorizontalPodAutoscaler":
				g.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
				into = g.hpa
			case "policy/v1/PodDisruptionBudget":
				g.pdb = &policyv1.PodDisruptionBudget{}
				into = g.pdb
			case "networking.k8s.io/v1/NetworkPolicy":
				g.policy = &networkingv1.NetworkPolicy{}
				into = g.policy
			case "apps/v1/StatefulSet":
				g.redis = &appsv1.StatefulSet{}
				into = g.redis
			default:
				t.Fatalf("%s: unexpected object %s", f.Path, gvk)
			}
			if err := yaml.UnmarshalStrict(doc, into); err != nil {
				t.Fatalf("%s does not decode strictly into %T: %v", f.Path, into, err)
			}
		}
	}
	return g
}

func TestKubernetesGateway(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"cpu", "gpu1", "gpu4-rps", "vllm", "tgi"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := loadTestConfig(t, name)
			g := decodeGateway(t, renderTest(t, name, KubernetesGateway))
			gw := cfg.Name + "-gateway"
			if g.deploy == nil || g.configMap == nil || g.hpa == nil || g.pdb == nil || g.policy == nil || g.redis == nil {
				t.Fatalf("missing objects: %+v", g)
			}
			// The gateway pods are not the model's: the model's PDB, Service and
			// spread select app.kubernetes.io/name=<name>, which they must not match.
			pod := g.deploy.Spec.Template
			if n := pod.Labels["app.kubernetes.io/name"]; n != gw {
				t.Errorf("gateway pods named %q, want %q", n, gw)
			}
			if g.deploy.Spec.Replicas != nil {
				t.Error("the gateway Deployment sets replicas, which the HPA owns")
			}
			if g.hpa.Spec.ScaleTargetRef.Name != gw || *g.hpa.Spec.MinReplicas != 2 || g.hpa.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
				t.Errorf("HPA %+v: want it on %s's CPU from 2 replicas", g.hpa.Spec, gw)
			}
			c := pod.Spec.Containers[0]
			if c.Image != "aideploy:"+testVersion || !slices.Equal(c.Args, []string{"gateway", "serve", "--config", "/etc/aideploy/aideploy.yaml"}) {
				t.Errorf("gateway container runs %s %v", c.Image, c.Args)
			}
			if e := c.Env[0]; e.Name != "AIDEPLOY_ADMIN_TOKEN" || e.ValueFrom.SecretKeyRef.Name != gw+"-admin" || e.ValueFrom.SecretKeyRef.Optional != nil {
				t.Errorf("admin token env %+v: want a required key of Secret %s-admin", e, gw)
			}
			if c.Lifecycle.PreStop.Sleep == nil || c.Resources.Limits.Cpu().Value() != 0 {
				t.Errorf("want a preStop pause and no CPU limit: %+v %+v", c.Lifecycle, c.Resources)
			}
			if got := pod.Spec.Volumes[0].ConfigMap.Name; got != g.configMap.Name {
				t.Errorf("config volume from ConfigMap %q, rendered %q", got, g.configMap.Name)
			}

			// No Service exposes the admin port; the policy keeps it in the namespace.
			for n, s := range g.services {
				for _, p := range s.Spec.Ports {
					if p.TargetPort.String() == "admin" || int(p.Port) == 8081 {
						t.Errorf("Service %s exposes the admin port", n)
					}
				}
			}
			var adminFromNS bool
			for _, r := range g.policy.Spec.Ingress {
				for _, p := range r.Ports {
					if p.Port.String() == "admin" {
						adminFromNS = len(r.From) == 1 && r.From[0].PodSelector != nil && r.From[0].NamespaceSelector == nil && len(r.From[0].PodSelector.MatchLabels) == 0
					}
				}
			}
			if !adminFromNS {
				t.Errorf("the NetworkPolicy does not limit the admin port to this namespace: %+v", g.policy.Spec.Ingress)
			}

			// One headless Service per colour, selecting the model pods of that colour.
			for _, color := range []string{"blue", "green"} {
				s := g.services[cfg.Name+"-"+color]
				if s == nil || s.Spec.ClusterIP != corev1.ClusterIPNone || s.Spec.Selector["aideploy.dev/color"] != color || s.Spec.Selector["app.kubernetes.io/name"] != cfg.Name || int(s.Spec.Ports[0].Port) != cfg.Port {
					t.Errorf("headless Service of %s: %+v", color, s)
				}
			}
			if s := g.services[gw]; s == nil || s.Spec.Selector["app.kubernetes.io/name"] != gw {
				t.Errorf("client Service %s: %+v", gw, s)
			}

			// The ConfigMap is an aideploy.yaml that gateway serve accepts.
			pc := gatewayConfigOf(t, g.configMap)
			if pc.Listen != "0.0.0.0:8080" || pc.AdminListen != "0.0.0.0:8081" || pc.RedisURL != "redis://"+cfg.Name+"-redis:6379/0" {
				t.Errorf("gateway listens on %s, %s with Redis %s", pc.Listen, pc.AdminListen, pc.RedisURL)
			}
			def := pc.Pools[slices.IndexFunc(pc.Pools, func(p upstream.PoolConfig) bool { return p.Name == "default" })]
			want := "dns+http://" + cfg.Name + "-blue:" + strconv.Itoa(cfg.Port)
			if len(def.Targets) != 1 || def.Targets[0].URL != want || def.HealthCheck.Path != cfg.Health.ReadyPath {
				t.Errorf("default pool %+v: want target %s probed on %s", def, want, cfg.Health.ReadyPath)
			}
			if g.redis.Spec.Template.Spec.Containers[0].Args[2] != "" {
				t.Errorf("redis persists: %v", g.redis.Spec.Template.Spec.Containers[0].Args)
			}
		})
	}
}

// gatewayConfigOf reads the ConfigMap's aideploy.yaml as gateway serve does.
func gatewayConfigOf(t *testing.T, cm *corev1.ConfigMap) gateway.Config {
	t.Helper()
	c, err := config.Parse("aideploy.yaml", []byte(cm.Data["aideploy.yaml"]))
	if err != nil {
		t.Fatalf("the ConfigMap's aideploy.yaml does not load: %v", err)
	}
	return c.Gateway
}

func TestKubernetesGatewayVariants(t *testing.T) {
	t.Parallel()
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		if g := decodeGateway(t, renderTest(t, "ollama", KubernetesGateway)); g.files != 0 {
			t.Errorf("gateway.enabled: false rendered %d gateway files", g.files)
		}
	})
	t.Run("redisURL", func(t *testing.T) {
		t.Parallel()
		cfg := loadTestConfig(t, "cpu")
		cfg.Gateway.RedisURL = "redis://redis.cache.svc:6379/2"
		files, err := render(cfg, config.DefaultFile, testVersion, []Kind{KubernetesGateway})
		if err != nil {
			t.Fatal(err)
		}
		g := decodeGateway(t, files)
		if g.redis != nil || g.services[cfg.Name+"-redis"] != nil {
			t.Error("a Redis is rendered although gateway.redisURL names one")
		}
		if got := gatewayConfigOf(t, g.configMap).RedisURL; got != cfg.Gateway.RedisURL {
			t.Errorf("gateway uses Redis %s, want %s", got, cfg.Gateway.RedisURL)
		}
	})
	t.Run("credentials refused", func(t *testing.T) {
		t.Parallel()
		cfg := loadTestConfig(t, "cpu")
		cfg.Gateway.RedisURL = "redis://:s3cret@redis.cache.svc:6379/0"
		_, err := render(cfg, config.DefaultFile, testVersion, []Kind{KubernetesGateway})
		if !errors.Is(err, ErrConfig) || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "gateway.redisURL") {
			t.Errorf("rendering a Redis password into a ConfigMap: %v", err)
		}
	})
	t.Run("config change rolls the pods", func(t *testing.T) {
		t.Parallel()
		cfg := loadTestConfig(t, "cpu")
		before := decodeGateway(t, renderTest(t, "cpu", KubernetesGateway))
		cfg.Gateway.Cache.TTL *= 2
		files, err := render(cfg, config.DefaultFile, testVersion, []Kind{KubernetesGateway})
		if err != nil {
			t.Fatal(err)
		}
		after := decodeGateway(t, files)
		key := "aideploy.dev/config-hash"
		if before.deploy.Spec.Template.Annotations[key] == after.deploy.Spec.Template.Annotations[key] {
			t.Error("a new gateway configuration leaves the pod template unchanged, so no pod reads it")
		}
	})
}

// On Kubernetes, Prometheus finds the gateway pods through the API (their admin
// port, from the pod annotation) under the job the alerts and panels read.
func TestKubernetesGatewayScrape(t *testing.T) {
	t.Parallel()
	cfg := loadTestConfig(t, "gpu1")
	cfg.Rollout.Target = "k8s"
	files, err := render(cfg, config.DefaultFile, testVersion, []Kind{Monitoring, KubernetesGateway})
	if err != nil {
		t.Fatal(err)
	}
	var prom struct {
		ScrapeConfigs []scrapeJob `json:"scrape_configs"`
	}
	if err := yaml.Unmarshal(fileData(t, files, "monitoring/prometheus.yml"), &prom); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(prom.ScrapeConfigs, func(s scrapeJob) bool {
		return s.JobName == gatewayJob(&renderData{Name: cfg.Name})
	})
	if i < 0 {
		t.Fatalf("no job %s-gateway", cfg.Name)
	}
	gw := prom.ScrapeConfigs[i]
	if len(gw.StaticConfigs) != 0 || len(gw.KubernetesSDConfigs) != 1 || gw.KubernetesSDConfigs[0]["role"] != "pod" {
		t.Fatalf("gateway job %+v: want the pods from the Kubernetes API", gw)
	}
	kept := map[string]string{}
	for _, r := range gw.RelabelConfigs {
		if r.Action == "keep" {
			kept[r.SourceLabels[0]] = r.Regex
		}
	}
	g := decodeGateway(t, files)
	if name := g.deploy.Spec.Template.Labels["app.kubernetes.io/name"]; kept["__meta_kubernetes_pod_label_app_kubernetes_io_name"] != name {
		t.Errorf("gateway job keeps pods named %q, the gateway pods are %q", kept["__meta_kubernetes_pod_label_app_kubernetes_io_name"], name)
	}
	ann := g.deploy.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "8081" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("gateway pod annotations %v: want /metrics on the admin port", ann)
	}
}

type scrapeJob struct {
	JobName             string              `json:"job_name"`
	KubernetesSDConfigs []map[string]string `json:"kubernetes_sd_configs"`
	StaticConfigs       []any               `json:"static_configs"`
	RelabelConfigs      []struct {
		SourceLabels []string `json:"source_labels"`
		Regex        string   `json:"regex"`
		Action       string   `json:"action"`
	} `json:"relabel_configs"`
}
