package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/validate"
)

type gatewayServeOptions struct {
	f           *Factory
	reloading   bool // a SIGHUP reload reads the file again rather than the factory's cached copy
	listen      string
	adminListen string
	upstreams   []string
	redis       string
	tlsCert     string
	tlsKey      string
	maxConns    int
}

func newCmdGateway(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway",
		Short: "Run the embedded AI gateway: cache, limits, breaker, metrics, traffic switch",
	}
	cmd.AddCommand(newCmdGatewayServe(f, nil), newCmdGatewayConfig(f, nil), newCmdGatewayKey(f, nil))
	return cmd
}

func newCmdGatewayServe(f *Factory, runF func(context.Context, *gatewayServeOptions) error) *cobra.Command {
	opts := &gatewayServeOptions{f: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the gateway in front of the model servers",
		Long: `Serve the gateway. Settings come from the gateway section of aideploy.yaml
(or --config FILE); flags override them. Without --redis the cache and limits
live in memory. The admin API token is read from gateway.adminTokenFile or
AIDEPLOY_ADMIN_TOKEN, never from a flag. SIGHUP reloads the configuration
without dropping requests; SIGINT/SIGTERM drain in-flight requests and exit.`,
		Example: `  aideploy gateway serve --upstream http://127.0.0.1:8000
  aideploy gateway serve --upstream unix:///run/model.sock --redis redis://127.0.0.1:6379/0
  aideploy gateway serve --upstream https://model.internal:8443 --tls-cert gw.pem --tls-key gw-key.pem`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runGatewayServe(cmd.Context(), opts)
		},
	}
	opts.addFlags(cmd)
	return cmd
}

// addFlags binds the flags that override the file's gateway section: serve
// and config take the same ones, so config shows what serve would run with.
func (opts *gatewayServeOptions) addFlags(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&opts.listen, "listen", "", "address for clients (default from config, else 127.0.0.1:8080)")
	fl.StringVar(&opts.adminListen, "admin-listen", "", "address of the admin API and /metrics (default 127.0.0.1:8081)")
	fl.StringArrayVar(&opts.upstreams, "upstream", nil, "target of the default pool: http://HOST:PORT, https://HOST:PORT or unix:///path.sock (repeatable)")
	fl.StringVar(&opts.redis, "redis", "", "redis://HOST:PORT/DB shared by replicas for cache and limits")
	fl.StringVar(&opts.tlsCert, "tls-cert", "", "PEM certificate file: serve clients over TLS with HTTP/2 (read again on SIGHUP)")
	fl.StringVar(&opts.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fl.IntVar(&opts.maxConns, "max-connections", 0, "open client connections at most (default: from the open-file limit)")
}

// upstreamPool is what a pool made from --upstream takes from the model
// server aideploy.yaml describes.
type upstreamPool struct {
	// health is the path it checks: a stock server's readiness path
	// (Ollama has no /health), else the gateway's default.
	health string
	// slots is how many requests one replica works on at once when the
	// preset fixes it (Ollama's OLLAMA_NUM_PARALLEL, from model.concurrency),
	// and 0 when the adaptive limit has to find it. Ollama queues everything
	// past its slots without bound, so its exact capacity is the right limit.
	slots int
	// queue is the queue in front of those slots (upstream.SlotQueue); zero,
	// the automatic queue, with the adaptive limit.
	queue upstream.Queue
}

// load returns the gateway section of the configuration file, or the defaults
// when there is no file: `gateway serve --upstream URL` needs none.
func (opts *gatewayServeOptions) load() (cfg gateway.Config, pool upstreamPool, err error) {
	pool.health = upstream.DefaultHealthCheck().Path
	if _, err := os.Stat(opts.f.ConfigPath); errors.Is(err, fs.ErrNotExist) {
		return gateway.Default(), pool, nil
	}
	var c *config.Config
	if opts.reloading {
		c, err = config.Load(opts.f.ConfigPath)
	} else {
		c, err = opts.f.Config()
	}
	if err != nil {
		return gateway.Config{}, pool, err
	}
	if !c.Preset().Dockerfile && c.Health.ReadyPath != "" {
		pool.health = c.Health.ReadyPath
	}
	if c.Server == config.ServerOllama {
		pool.slots = c.Model.Concurrency
		pool.queue = upstream.SlotQueue(c.Model.Concurrency, c.Replicas)
	}
	return c.Gateway, pool, nil
}

// gatewayConfig loads the gateway section and applies the flags.
func gatewayConfig(opts *gatewayServeOptions) (gateway.Config, error) {
	cfg, up, err := opts.load()
	if err != nil {
		return cfg, err
	}
	if opts.listen != "" {
		cfg.Listen = opts.listen
	}
	if opts.adminListen != "" {
		cfg.AdminListen = opts.adminListen
	}
	if opts.redis != "" {
		cfg.RedisURL = opts.redis
	}
	if opts.tlsCert != "" || opts.tlsKey != "" {
		cfg.Server.TLS = gateway.TLSConfig{CertFile: opts.tlsCert, KeyFile: opts.tlsKey}
	}
	if opts.maxConns != 0 {
		cfg.Server.MaxConnections = opts.maxConns
	}
	if len(opts.upstreams) > 0 {
		cfg.Pools = slices.Clone(cfg.Pools)
		var targets []upstream.TargetConfig
		for _, u := range opts.upstreams {
			targets = append(targets, upstream.TargetConfig{URL: u})
		}
		i := -1
		for j, p := range cfg.Pools {
			if p.Name == "default" {
				i = j
			}
		}
		if i < 0 {
			hc := upstream.DefaultHealthCheck()
			hc.Path = up.health
			cfg.Pools = append(cfg.Pools, upstream.PoolConfig{Name: "default", HealthCheck: hc, MaxInflight: up.slots, Queue: up.queue})
			i = len(cfg.Pools) - 1
		}
		cfg.Pools[i].Targets = targets
	}
	cfg.SetDefaults()
	errs := validate.New()
	// With any pool, Validate reports a missing "default" pool or targets itself.
	if len(cfg.Pools) == 0 {
		errs.At("gateway").Addf("pools", "needs a pool named \"default\" with a target; add one or pass --upstream URL")
	}
	cfg.Validate(errs.At("gateway"))
	if list := errs.List(); len(list) > 0 {
		msgs := make([]string, len(list))
		for i, e := range list {
			msgs[i] = e.Error()
		}
		return cfg, UsageErrorf("invalid gateway settings:\n  %s", strings.Join(msgs, "\n  "))
	}
	return cfg, nil
}

func runGatewayServe(ctx context.Context, opts *gatewayServeOptions) error {
	cfg, err := gatewayConfig(opts)
	if err != nil {
		return err
	}
	reload := func() (gateway.Config, error) {
		opts.reloading = true
		c, err := gatewayConfig(opts)
		var ue *UsageError
		if errors.As(err, &ue) {
			return c, ue.Err
		}
		return c, err
	}
	// go-redis logs through one logger per process, so it is set here, where
	// the process runs one gateway.
	redis.SetLogger(redisLogger{opts.f.Logger()})
	err = gateway.Run(ctx, cfg, opts.f.Logger(), gateway.Options{Reload: reload})
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// redisLogger hands go-redis's own lines (one per failed dial, many a second
// while Redis is down) to the gateway's logger at debug level: the cache
// and the limiter log an outage once, with what they do about it.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
}
