package cli

import (
	"context"
	"os"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/aideploy/aideploy/internal/iostreams"
)

// TestMain lets the scripts under testdata/script run `aideploy` as a command:
// testscript re-executes this test binary as aideploy, which calls Run exactly
// as cmd/aideploy does.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"aideploy": func() {
			streams := iostreams.System()
			os.Exit(ExitCode(streams, Run(context.Background(), streams, os.Args[1:])))
		},
	})
}

func TestScript(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{Dir: "testdata/script"})
}
