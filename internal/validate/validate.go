package validate

import (
	"fmt"
	"strings"
)

// Error is one problem with one field.
type Error struct {
	Path string // dotted path from the document root, e.g. "gateway.cache.ttl"
	Msg  string // what is wrong and what is allowed
}

func (e Error) Error() string { return e.Path + ": " + e.Msg }

// Errors collects field errors under a path prefix.
type Errors struct {
	prefix string
	list   *[]Error
}

// New returns an empty collector rooted at the document.
func New() Errors { return Errors{list: &[]Error{}} }

// At returns a collector whose paths are prefixed by path, sharing the same list.
func (e Errors) At(path string) Errors {
	return Errors{prefix: join(e.prefix, path), list: e.list}
}

// Addf records a problem with the field at path (relative to the collector).
func (e Errors) Addf(path, format string, args ...any) {
	*e.list = append(*e.list, Error{Path: join(e.prefix, path), Msg: fmt.Sprintf(format, args...)})
}

// List returns what was collected, in the order it was added.
func (e Errors) List() []Error { return *e.list }

// Positive records an error unless v > 0.
func (e Errors) Positive(path string, v int) {
	if v <= 0 {
		e.Addf(path, "(%d) must be at least 1", v)
	}
}

// NonNegative records an error if v < 0.
func (e Errors) NonNegative(path string, v int) {
	if v < 0 {
		e.Addf(path, "(%d) must not be negative", v)
	}
}

// OneOf records an error unless v is one of allowed.
func (e Errors) OneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	e.Addf(path, "(%q) must be one of %s", v, strings.Join(allowed, ", "))
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}
