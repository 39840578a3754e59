package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aideploy/aideploy/internal/config"
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
		return UsageErrorf("%v", err)
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
	if err == nil {
		return ExitOK
	}
	var silent *SilentError
	if errors.As(err, &silent) {
		return silent.Code
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(streams.ErrOut, "aideploy: interrupted")
		return ExitFailed
	}
	var usage *UsageError
	var cfgErr *config.Error
	switch {
	case errors.As(err, &cfgErr):
		fmt.Fprintln(streams.ErrOut, strings.TrimRight(err.Error(), "\n"))
		return ExitUsage
	case errors.As(err, &usage):
		fmt.Fprintf(streams.ErrOut, "aideploy: %v\nRun 'aideploy --help' for usage.\n", err)
		return ExitUsage
	}
	fmt.Fprintf(streams.ErrOut, "aideploy: %v\n", err)
	return ExitFailed
}
