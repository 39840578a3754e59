package units

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ByteSize is a size in bytes written with a Kubernetes-style suffix ("16Gi", "512Mi", "8G").
type ByteSize int64

var byteSuffixes = []struct {
	suffix string
	mult   int64
}{
	{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
	{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
}

// ParseByteSize reads "16Gi", "512Mi", "8G" or a plain number of bytes.
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, bs := range byteSuffixes {
		if strings.HasSuffix(t, bs.suffix) {
			t, mult = strings.TrimSuffix(t, bs.suffix), bs.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("(%q) is not a size; use e.g. 512Mi, 16Gi or 8G", s)
	}
	return ByteSize(n * float64(mult)), nil
}

// String writes the size with the largest binary suffix that divides it exactly.
func (b ByteSize) String() string {
	for _, s := range []string{"Ti", "Gi", "Mi", "Ki"} {
		for _, bs := range byteSuffixes {
			if bs.suffix == s && int64(b) != 0 && int64(b)%bs.mult == 0 {
				return strconv.FormatInt(int64(b)/bs.mult, 10) + s
			}
		}
	}
	return strconv.FormatInt(int64(b), 10)
}

// UnmarshalYAML reads size text or a plain integer.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a size such as 16Gi")
	}
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes size text.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// MarshalJSON writes size text.
func (b ByteSize) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON reads size text.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("expected a size such as 16Gi")
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}
