package gateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"gopkg.in/yaml.v3"
)

// LoadSection reads the gateway section of an aideploy.yaml over the defaults.
// A missing file gives the defaults and found false.
func LoadSection(path string) (cfg Config, found bool, err error) {
	cfg = Default()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, false, nil
	}
	if err != nil {
		return cfg, false, fmt.Errorf("reading %s: %w", path, err)
	}
	var doc struct {
		Gateway yaml.Node `yaml:"gateway"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return cfg, true, fmt.Errorf("reading %s: %w", path, err)
	}
	if doc.Gateway.Kind == 0 {
		return cfg, true, nil
	}
	if err := doc.Gateway.Decode(&cfg); err != nil {
		return cfg, true, fmt.Errorf("reading the gateway section of %s: %w", path, err)
	}
	return cfg, true, nil
}
