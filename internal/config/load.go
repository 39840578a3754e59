package config

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/aideploy/aideploy/internal/validate"
)

// Load reads, decodes and validates the configuration file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		e := &Error{File: path}
		switch {
		case errors.Is(err, fs.ErrNotExist):
			e.add(0, 0, "", "does not exist; run `aideploy init` to create it, or point --config at it")
		case errors.Is(err, fs.ErrPermission):
			e.add(0, 0, "", "cannot be read (permission denied); check its mode and owner")
		default:
			e.add(0, 0, "", "cannot be read: %v", err)
		}
		return nil, e
	}
	return Parse(path, data)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates a configuration read from the file named name.
func Parse(name string, data []byte) (*Config, error) {
	e := &Error{File: name}
	if len(bytes.TrimSpace(data)) == 0 {
		e.add(1, 1, "", "is empty; run `aideploy init` to write a starting configuration")
		return nil, e
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		msg := err.Error()
		line := 1
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		e.add(line, 1, "", "is not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		return nil, e
	}
	if len(root.Content) == 0 || root.Content[0].Kind == yaml.ScalarNode && root.Content[0].Tag == "!!null" {
		e.add(1, 1, "", "holds no settings; run `aideploy init` to write a starting configuration")
		return nil, e
	}
	cfg := base()
	d := &decoder{err: e, positions: map[string]position{}}
	d.decode(&root, reflect.ValueOf(cfg).Elem(), "")
	broken := map[string]bool{}
	for _, p := range e.Problems {
		broken[p.Path] = true
	}
	cfg.derive(func(path string) bool { _, ok := d.positions[path]; return ok })
	errs := validate.New()
	cfg.Validate(errs)
	for _, p := range errs.List() {
		if broken[p.Path] {
			continue // already reported as undecodable; its default would only confuse
		}
		pos := d.lookup(p.Path)
		e.add(pos.line, pos.col, p.Path, "%s", p.Msg)
	}
	if err := e.orNil(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// lookup finds where path was written, or the nearest enclosing field that was.
func (d *decoder) lookup(path string) position {
	for p := path; p != ""; {
		if pos, ok := d.positions[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if pos, ok := d.positions[""]; ok {
		return pos
	}
	return position{1, 1}
}
