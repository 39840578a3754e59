package render

import (
	"bytes"
	"fmt"
	"text/template"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/templates"
)

// ConfigFile writes cfg as a commented aideploy.yaml, the file `aideploy init`
// creates. Reading the result back with config.Parse gives cfg again.
func ConfigFile(cfg *config.Config) ([]byte, error) {
	tmpl, err := template.New("").Funcs(funcs()).Option("missingkey=error").ParseFS(templates.FS, "aideploy.yaml.tmpl")
	if err != nil {
		return nil, fmt.Errorf("parsing the aideploy.yaml template: %w", err)
	}
	var b bytes.Buffer
	if err := tmpl.ExecuteTemplate(&b, "aideploy.yaml.tmpl", cfg); err != nil {
		return nil, fmt.Errorf("writing aideploy.yaml: %w", err)
	}
	return b.Bytes(), nil
}
