package cli

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/aideploy/aideploy/internal/config"
)

// errorReport is what a failed command prints on stdout with --output json
// or yaml, so a script that parses stdout always gets a document; the human
// message still goes to stderr and the exit code does not change.
type errorReport struct {
	Error errorBody `json:"error"`
}

type errorBody struct {
	// Kind is usage, config, failed or interrupted.
	Kind     string `json:"kind"`
	Message  string `json:"message"`
	ExitCode int    `json:"exitCode"`
	// File and Problems are set for a configuration error: every problem
	// with its line and field, as validate prints them.
	File     string           `json:"file,omitempty"`
	Problems []config.Problem `json:"problems,omitempty"`
}

// classify says how err ends the process: its exit code and kind.
func classify(err error) (int, string) {
	var silent *SilentError
	var usage *UsageError
	var cfgErr *config.Error
	switch {
	case err == nil:
		return ExitOK, ""
	case errors.As(err, &silent):
		return silent.Code, "failed"
	case errors.Is(err, context.Canceled):
		return ExitFailed, "interrupted"
	case errors.As(err, &cfgErr):
		return ExitUsage, "config"
	case errors.As(err, &usage):
		return ExitUsage, "usage"
	}
	return ExitFailed, "failed"
}

// writeErrorOutput prints err as an errorReport in format (json or yaml).
// A SilentError has been reported already, in the command's own document.
func writeErrorOutput(w io.Writer, format string, err error) {
	var silent *SilentError
	if errors.As(err, &silent) {
		return
	}
	code, kind := classify(err)
	body := errorBody{Kind: kind, Message: strings.TrimRight(err.Error(), "\n"), ExitCode: code}
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		body.File, body.Problems = cfgErr.File, cfgErr.Problems
	}
	_ = printOutput(w, format, errorReport{Error: body}, nil)
}

// outputFormatOf is the --output the user asked for: the parsed flag, or,
// when parsing stopped before it (an unknown flag earlier on the line), the
// value found by scanning the arguments.
func outputFormatOf(parsed string, args []string) string {
	if parsed != "table" && parsed != "" {
		return parsed
	}
	for i, a := range args {
		if a == "--" {
			break
		}
		switch {
		case (a == "-o" || a == "--output") && i+1 < len(args):
			return args[i+1]
		case strings.HasPrefix(a, "--output="):
			return strings.TrimPrefix(a, "--output=")
		case strings.HasPrefix(a, "-o="):
			return strings.TrimPrefix(a, "-o=")
		case strings.HasPrefix(a, "-o") && len(a) > 2 && !strings.HasPrefix(a, "--"):
			return a[2:]
		}
	}
	return parsed
}
