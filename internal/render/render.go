package render

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/aideploy/aideploy/internal/buildinfo"
	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/templates"
)

// Kind is a group of rendered files, named as on the command line.
type Kind string

// The kinds of files aideploy renders.
const (
	Dockerfile Kind = "dockerfile"
	Compose    Kind = "compose"
	Kubernetes Kind = "k8s"
	// KubernetesGateway is the gateway in front of the model on Kubernetes, its
	// Redis and the per-colour Services it finds the model pods through: apart
	// from Kubernetes, whose objects the rollout colours.
	KubernetesGateway Kind = "k8s-gateway"
	Monitoring        Kind = "monitoring"
	Nginx             Kind = "nginx"
	All               Kind = "all"
)

// Kinds lists every kind in command-line order, All last.
func Kinds() []Kind {
	return []Kind{Dockerfile, Compose, Kubernetes, KubernetesGateway, Monitoring, Nginx, All}
}

// ParseKind reads a kind as written on the command line.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("%q is not something aideploy renders; choose one of %s", s, strings.Join(names, ", "))
}

// ErrConfig marks a configuration that validates but cannot be rendered; the
// error's text says which field to change.
var ErrConfig = errors.New("configuration cannot be rendered")

// File is one rendered file.
type File struct {
	// Path is relative to the output folder, slash-separated.
	Path string `json:"path"`
	// Data is the file's content.
	Data []byte `json:"-"`
	// Mode is the file's permission bits.
	Mode fs.FileMode `json:"mode"`
}

// format says how a file is checked and where its header goes.
type format int

const (
	formatText format = iota // '#' comments, no structure check
	formatYAML               // '#' comments, must parse as YAML
	formatJSON               // no comments: the header goes into the content
)

type output struct {
	kind   Kind
	path   string
	tmpl   string
	format format
	when   func(*renderData) bool
}

// outputs is the table of every file aideploy renders, in path order.
func outputs() []output {
	return []output{
		// A preset runs the server's stock image: nothing to build.
		{kind: Dockerfile, path: ".dockerignore", tmpl: "dockerignore.tmpl", when: func(d *renderData) bool { return d.Dockerfile }},
		{kind: Dockerfile, path: "Dockerfile", tmpl: "Dockerfile.tmpl", when: func(d *renderData) bool { return d.Dockerfile }},
		{kind: Compose, path: "compose.yaml", tmpl: "compose.yaml.tmpl", format: formatYAML},
		{kind: Kubernetes, path: "k8s/deployment.yaml", tmpl: "k8s-deployment.yaml.tmpl", format: formatYAML},
		{kind: KubernetesGateway, path: "k8s/gateway/configmap.yaml", tmpl: "k8s-gateway-configmap.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: KubernetesGateway, path: "k8s/gateway/deployment.yaml", tmpl: "k8s-gateway-deployment.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: KubernetesGateway, path: "k8s/gateway/hpa.yaml", tmpl: "k8s-gateway-hpa.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: KubernetesGateway, path: "k8s/gateway/networkpolicy.yaml", tmpl: "k8s-gateway-networkpolicy.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: KubernetesGateway, path: "k8s/gateway/pdb.yaml", tmpl: "k8s-gateway-pdb.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: KubernetesGateway, path: "k8s/gateway/redis.yaml", tmpl: "k8s-redis.yaml.tmpl", format: formatYAML, when: func(d *renderData) bool { return d.K8sGateway != nil && d.K8sGateway.Redis != nil }},
		{kind: KubernetesGateway, path: "k8s/gateway/service.yaml", tmpl: "k8s-gateway-service.yaml.tmpl", format: formatYAML, when: gatewayOnK8s},
		{kind: Kubernetes, path: "k8s/hpa.yaml", tmpl: "k8s-hpa.yaml.tmpl", format: formatYAML, when: func(d *renderData) bool { return d.HPA != nil }},
		{kind: Kubernetes, path: "k8s/pdb.yaml", tmpl: "k8s-pdb.yaml.tmpl", format: formatYAML},
		{kind: Kubernetes, path: "k8s/pvc.yaml", tmpl: "k8s-pvc.yaml.tmpl", format: formatYAML, when: func(d *renderData) bool { return d.Claim != nil }},
		{kind: Kubernetes, path: "k8s/scaledobject.yaml", tmpl: "k8s-keda.yaml.tmpl", format: formatYAML, when: func(d *renderData) bool { return d.KEDA != nil }},
		{kind: Kubernetes, path: "k8s/service.yaml", tmpl: "k8s-service.yaml.tmpl", format: formatYAML},
		{kind: Monitoring, path: "monitoring/alerts.yaml", tmpl: "alerts.yaml.tmpl", format: formatYAML},
		{kind: Monitoring, path: "monitoring/grafana-dashboard.json", tmpl: "grafana-dashboard.json.tmpl", format: formatJSON},
		{kind: Monitoring, path: "monitoring/prometheus.yml", tmpl: "prometheus.yml.tmpl", format: formatYAML},
		{kind: Nginx, path: "nginx/nginx.conf", tmpl: "nginx.conf.tmpl"},
	}
}

func gatewayOnK8s(d *renderData) bool { return d.K8sGateway != nil }

// Paths lists every path that rendering kinds could produce for any config,
// so callers can tell which files are aideploy's.
func Paths(kinds ...Kind) []string {
	var out []string
	for _, o := range outputs() {
		if wanted(o.kind, kinds) {
			out = append(out, o.path)
		}
	}
	return out
}

// Render fills the templates of kinds (all when none) from cfg, a validated
// configuration read from the file source, which the headers name. The result
// is sorted by path and byte-identical for the same input.
func Render(cfg *config.Config, source string, kinds ...Kind) ([]File, error) {
	return render(cfg, source, buildinfo.Get().Version, kinds)
}

func render(cfg *config.Config, source, version string, kinds []Kind) ([]File, error) {
	for _, k := range kinds {
		if _, err := ParseKind(string(k)); err != nil {
			return nil, err
		}
	}
	d, err := newRenderData(cfg, source, version)
	if err != nil {
		return nil, err
	}
	tmpl, err := template.New("").Funcs(funcs()).Option("missingkey=error").ParseFS(templates.FS, "*.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parsing the embedded templates: %w", err)
	}
	var files []File
	for _, o := range outputs() {
		if !wanted(o.kind, kinds) || (o.when != nil && !o.when(d)) {
			continue
		}
		data, err := execute(tmpl, o, d)
		if err != nil {
			return nil, err
		}
		files = append(files, File{Path: o.path, Data: data, Mode: 0o644})
	}
	slices.SortFunc(files, func(a, b File) int { return strings.Compare(a.Path, b.Path) })
	return files, nil
}

func execute(tmpl *template.Template, o output, d *renderData) ([]byte, error) {
	var b bytes.Buffer
	if o.format != formatJSON {
		b.WriteString("# " + d.Header + "\n")
	}
	if err := tmpl.ExecuteTemplate(&b, o.tmpl, d); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", o.path, err)
	}
	// A template mistake must never reach a user's disk as a broken file.
	switch o.format {
	case formatYAML:
		dec := yaml.NewDecoder(bytes.NewReader(b.Bytes()))
		for {
			var v any
			if err := dec.Decode(&v); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("rendering %s: the result is not valid YAML (a bug in aideploy): %w", o.path, err)
			}
		}
	case formatJSON:
		var compact, out bytes.Buffer
		err := json.Compact(&compact, b.Bytes())
		if err == nil {
			err = json.Indent(&out, compact.Bytes(), "", "  ")
		}
		if err != nil {
			return nil, fmt.Errorf("rendering %s: the result is not valid JSON (a bug in aideploy): %w", o.path, err)
		}
		out.WriteByte('\n')
		return out.Bytes(), nil
	}
	return b.Bytes(), nil
}

func wanted(k Kind, kinds []Kind) bool {
	return len(kinds) == 0 || slices.Contains(kinds, All) || slices.Contains(kinds, k)
}
