// Command aideploy takes an AI model service from a laptop demo to production.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/aideploy/aideploy/internal/cli"
	"github.com/aideploy/aideploy/internal/iostreams"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	streams := iostreams.System()
	code := cli.ExitCode(streams, cli.Run(ctx, streams, os.Args[1:]))
	stop()
	os.Exit(code)
}
