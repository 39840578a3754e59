package config

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong in a configuration file.
type Problem struct {
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	Path   string `json:"path,omitempty"` // field path, e.g. autoscaling.maxReplicas
	Msg    string `json:"message"`
}

// Error lists every problem found in one file. It exits with code 2.
type Error struct {
	File     string    `json:"file"`
	Problems []Problem `json:"problems"`
}

func (e *Error) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d:%d", p.Line, p.Column)
		}
		b.WriteString(": ")
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteByte(' ')
		}
		b.WriteString(p.Msg)
	}
	return b.String()
}

func (e *Error) add(line, col int, path, format string, args ...any) {
	e.Problems = append(e.Problems, Problem{Line: line, Column: col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (e *Error) sort() {
	sort.SliceStable(e.Problems, func(i, j int) bool {
		a, b := e.Problems[i], e.Problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

func (e *Error) orNil() error {
	if len(e.Problems) == 0 {
		return nil
	}
	e.sort()
	return e
}
