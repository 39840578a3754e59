package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aideploy/aideploy/internal/iostreams"
)

// Exit codes, documented in `aideploy --help` and the README.
const (
	ExitOK     = 0 // the operation succeeded
	ExitFailed = 1 // the operation ran and failed (a rollout rolled back, a check failed)
	ExitUsage  = 2 // bad flags, arguments or configuration: nothing was changed
)

// Run executes one aideploy invocation.
func Run(ctx context.Context, streams *iostreams.IOStreams, args []string) error {
	f := NewFactory(streams)
	root := NewRootCmd(f)
	root.SetArgs(args)
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	_, err := root.ExecuteContextC(ctx)
	if err != nil && strings.HasPrefix(err.Error(), "unknown command") {
		err = UsageErrorf("%v", err)
	}
	if err != nil {
		if format := outputFormatOf(f.Output, args); format == "json" || format == "yaml" {
			writeErrorOutput(streams.Out, format, err)
		}
	}
	return err
}

// UsageError marks a problem with how aideploy was called; it exits 2.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// UsageErrorf returns a formatted UsageError.
func UsageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// SilentError has already been reported to the user; only its exit code remains.
type SilentError struct{ Code int }

func (e *SilentError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode reports err on the error stream and returns the process exit code.
func ExitCode(streams *iostreams.IOStreams, err error) int {
	code, kind := classify(err)
	switch kind {
	case "":
	case "interrupted":
		fmt.Fprintln(streams.ErrOut, "aideploy: interrupted")
	case "config":
		fmt.Fprintln(streams.ErrOut, strings.TrimRight(err.Error(), "\n"))
	case "usage":
		fmt.Fprintf(streams.ErrOut, "aideploy: %v\nRun 'aideploy --help' for usage.\n", err)
	default:
		var silent *SilentError
		if !errors.As(err, &silent) {
			fmt.Fprintf(streams.ErrOut, "aideploy: %v\n", err)
		}
	}
	return code
}
