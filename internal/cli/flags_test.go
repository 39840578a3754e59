package cli

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/iostreams"
	"github.com/spf13/cobra"
)

// parseFlags runs the command newCmd builds with args and returns the options
// its run function received. With wantErr, the command must fail with a usage
// error containing it, and parseFlags returns nil.
func parseFlags[O any](t *testing.T, newCmd func(*Factory, func(context.Context, *O) error) *cobra.Command, args []string, wantErr string) *O {
	t.Helper()
	io, _, _, _ := iostreams.Test()
	var got *O
	cmd := newCmd(NewFactory(io), func(_ context.Context, o *O) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Out)
	cmd.SetErr(io.ErrOut)
	err := cmd.Execute()
	if wantErr != "" {
		var ue *UsageError
		if err == nil || !strings.Contains(err.Error(), wantErr) || !errors.As(err, &ue) {
			t.Fatalf("error = %v, want a usage error with %q", err, wantErr)
		}
		return nil
	}
	if err != nil || got == nil {
		t.Fatalf("error = %v", err)
	}
	return got
}
