package cli

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"
)

type gatewayKeyOptions struct {
	f     *Factory
	name  string
	stdin bool
}

func newCmdGatewayKey(f *Factory, runF func(context.Context, *gatewayKeyOptions) error) *cobra.Command {
	opts := &gatewayKeyOptions{f: f}
	cmd := &cobra.Command{
		Use:   "key TENANT",
		Short: "Make an API key for a tenant and print the gateway.auth.keys entry that accepts it",
		Long: `Make a random API key for TENANT and print it once, with the entry to add
under gateway.auth.keys in aideploy.yaml. The file stores only the key's
SHA-256, so the key cannot be shown again: hand it to the tenant now.

With --stdin the key is read from standard input instead (one line), for a
key that already exists; it is never taken as an argument, which ps shows.
Nothing is written to aideploy.yaml: add the entry, then reload the gateway
(SIGHUP) or restart it.`,
		Example: `  aideploy gateway key team-a
  printf %s "$EXISTING_KEY" | aideploy gateway key team-b --stdin
  aideploy gateway key team-c -o json | jq -r .key`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return UsageErrorf("%s takes the tenant's name, e.g. %s team-a", commandName(cmd), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.name = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runGatewayKey(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.stdin, "stdin", false, "hash the key read from standard input instead of making one")
	return cmd
}

// gatewayKey is what gateway key prints; Key is empty with --stdin (the
// caller has it already, and a log of this output should not).
type gatewayKey struct {
	Name   string `json:"name"`
	Key    string `json:"key,omitempty"`
	SHA256 string `json:"sha256"`
}

// keyPrefix marks the gateway's keys, as "sk-" marks OpenAI's: a leaked key
// is recognisable in logs and by secret scanners.
const keyPrefix = "sk-aid-"

func runGatewayKey(_ context.Context, opts *gatewayKeyOptions) error {
	name := strings.TrimSpace(opts.name)
	if name == "" {
		return UsageErrorf("the tenant name is empty; give the name limits and cache isolation will use, e.g. aideploy gateway key team-a")
	}
	out := gatewayKey{Name: name}
	var key string
	if opts.stdin {
		line, err := bufio.NewReader(opts.f.IO.In).ReadString('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("reading the key from standard input: %w", err)
		}
		if key = strings.TrimRight(line, "\r\n"); key == "" {
			return UsageErrorf("--stdin read no key; pipe it in, e.g. printf %%s \"$KEY\" | aideploy gateway key %s --stdin", name)
		}
		if strings.TrimSpace(key) != key {
			return UsageErrorf("the key read from standard input starts or ends with spaces; clients would send it without them")
		}
	} else {
		var b [24]byte
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		key = keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
		out.Key = key
	}
	sum := sha256.Sum256([]byte(key))
	out.SHA256 = hex.EncodeToString(sum[:])
	return printOutput(opts.f.IO.Out, opts.f.Output, out, func(w io.Writer) error {
		if out.Key != "" {
			fmt.Fprintf(w, "API key for %s (shown only now; hand it to the tenant):\n\n  %s\n\n", name, out.Key)
		}
		_, err := fmt.Fprintf(w, "Add under gateway.auth.keys in aideploy.yaml (auth.enabled: true), then reload the gateway (SIGHUP):\n\n      - name: %s\n        sha256: %s\n", yamlString(name), out.SHA256)
		return err
	})
}

// yamlString writes a tenant name as a YAML scalar, quoted where YAML would
// read it as something else (yes, 007, a: b).
func yamlString(s string) string {
	b, err := yaml.Marshal(s)
	if out := strings.TrimSuffix(string(b), "\n"); err == nil && !strings.Contains(out, "\n") {
		return out
	}
	return strconv.Quote(s) // one line (a block scalar would break the entry); JSON's quoting is YAML's too
}
