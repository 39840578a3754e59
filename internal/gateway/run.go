package gateway

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/gateway/admin"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
)

// Run serves cfg until ctx ends, then drains in-flight requests and streams
// for up to cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config, logger *slog.Logger, opts Options) error {
	cfg.SetDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	token, err := adminToken(cfg.AdminTokenFile)
	if err != nil {
		return err
	}
	var tokenNow atomic.Pointer[string] // a reload may rotate it
	tokenNow.Store(&token)
	var tlsCerts certs
	if cfg.Server.TLS.Enabled() {
		if err := tlsCerts.load(cfg.Server.TLS); err != nil {
			return err
		}
	}
	memLimit, restoreMem, err := MemoryLimit(memlimit.FromCgroup, memLimitRatio)
	if err != nil {
		logger.Warn("the container's memory limit could not be read; GOMEMLIMIT stays unset", "err", err)
	}
	defer restoreMem()
	gcPct, restoreGC := GCPercent(cfg.Cache, os.Getenv)
	defer restoreGC()
	if fix := memoryFix(cfg.Cache, memLimit); fix != "" {
		logger.Warn("gateway.cache.l1MaxBytes leaves too little of the container's memory",
			"l1MaxBytes", cfg.Cache.L1MaxBytes, "gomemlimit", memLimitString(memLimit), "fix", fix)
	}
	m := metrics.New()
	var rdb *redis.Client
	if cfg.RedisURL != "" {
		ro, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("gateway.redisURL %q: %w (use redis://HOST:PORT/DB)", RedactURL(cfg.RedisURL), err)
		}
		// The cache and the limiter bound each call with their own short
		// deadlines; the pool must not make callers queue behind each other.
		ro.DialTimeout, ro.ReadTimeout, ro.WriteTimeout = time.Second, time.Second, time.Second
		ro.ContextTimeoutEnabled = true
		ro.PoolSize, ro.MinIdleConns, ro.PoolTimeout = 512, 16, time.Second
		ro.MaxRetries = 0
		rdb = redis.NewClient(ro)
		defer rdb.Close()
	}
	builder := newDepsBuilder(logger, m, rdb)
	bctx, stop := context.WithCancel(context.Background())
	defer stop()
	srv, err := NewServer(bctx, cfg, builder.first(cfg))
	if err != nil {
		return err
	}
	srv.build = builder.build
	defer func() { closeDeps(srv.deps, Deps{}) }()
	m.Registry.MustRegister(metrics.Upstreams(func() []adminapi.Pool {
		var out []adminapi.Pool
		for _, p := range srv.Gateway().Pools() {
			out = append(out, p.Snapshot())
		}
		return out
	}))

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w%s", cfg.Listen, err, listenHint(err, "--listen"))
	}
	aln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("admin listener on %s: %w%s", cfg.AdminListen, err, listenHint(err, "--admin-listen"))
	}
	if host, _, _ := net.SplitHostPort(cfg.AdminListen); !isLoopback(host) && token == "" {
		logger.Warn("the admin listener is not on loopback and has no token: its API is refused", "addr", cfg.AdminListen)
	}
	conns := newConnLimit(maxConnections(cfg.Server))
	hs := clientServer(cfg.Server, srv, conns, &tlsCerts, logger)
	hs.BaseContext = srv.BaseContext
	as := &http.Server{Handler: admin.Handler(admin.Options{
		Pools: func() map[string]*upstream.Pool { return srv.Gateway().Pools() }, Token: func() string { return *tokenNow.Load() },
		Registry: m.Registry, Ready: func() bool { return srv.Gateway().Ready() },
	}), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() {
		if hs.TLSConfig != nil {
			errc <- hs.ServeTLS(conns.listen(ln), "", "")
			return
		}
		errc <- hs.Serve(conns.listen(ln))
	}()
	go func() { errc <- as.Serve(aln) }()
	logger.Info("gateway serving", "listen", ln.Addr().String(), "admin", aln.Addr().String(),
		"admin_api", adminAPIState(token), "pools", poolsSummary(cfg.Pools), "auth", authState(cfg.Auth),
		"cache", cacheState(cfg.Cache, rdb != nil), "limits", limitsState(cfg),
		"protocols", hs.Protocols.String(), "max_connections", conns.max.Load(), "gomemlimit", memLimitString(memLimit), "gogc", gcState(gcPct))
	if opts.Started != nil {
		opts.Started(ln.Addr().String(), aln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	if opts.Reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	cur := cfg
	for {
		select {
		case <-hup:
			next, tok, err := reload(opts.Reload, &tlsCerts, cur)
			if err == nil {
				err = srv.Reload(next)
			}
			if err != nil {
				logger.Error("reload refused; the old configuration stays", "err", err)
				continue
			}
			conns.max.Store(int64(maxConnections(next.Server)))
			attrs := []any{"restart_needed", needsRestart(cur, next)}
			if old := tokenNow.Swap(&tok); *old != tok {
				attrs = append(attrs, "admin_token_changed", true, "admin_api", adminAPIState(tok))
			}
			logger.Info(reloadMessage(needsRestart(cur, next)), attrs...)
			cur = next
			continue
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving: %w", err)
			}
		case <-ctx.Done():
		}
		break
	}
	timeout := srv.Gateway().cfg.ShutdownTimeout.D()
	logger.Info("gateway shutting down; draining in-flight requests", "timeout", timeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err = hs.Shutdown(sctx)
	if err != nil {
		// Streams still running get an error event before their connection goes.
		srv.stopStreams(2 * time.Second)
		hs.Close()
	}
	_ = as.Shutdown(sctx)
	stop()
	srv.wg.Wait()
	if err != nil {
		return fmt.Errorf("draining on shutdown: %w", err)
	}
	return nil
}

// reload loads the configuration again, with its admin token and TLS
// files; nothing of it applies unless all of it loads.
func reload(load func() (Config, error), tc *certs, cur Config) (Config, string, error) {
	next, err := load()
	if err != nil {
		return next, "", err
	}
	next.SetDefaults()
	tok, err := adminToken(next.AdminTokenFile)
	if err != nil {
		return next, "", err
	}
	if cur.Server.TLS.Enabled() && next.Server.TLS.Enabled() {
		if err := tc.load(next.Server.TLS); err != nil {
			return next, "", err
		}
	}
	return next, tok, nil
}

// clientServer is the http.Server for clients: HTTP/1.1, and HTTP/2 over TLS
// or, without TLS, h2c with prior knowledge.
func clientServer(sc ServerConfig, h http.Handler, conns *connLimit, tc *certs, logger *slog.Logger) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: sc.ReadHeaderTimeout.D(),
		IdleTimeout:       sc.IdleTimeout.D(),
		MaxHeaderBytes:    int(sc.MaxHeaderBytes),
		ConnState:         conns.connState,
		// net/http's own notes (TLS handshake errors, panics other than
		// ErrAbortHandler) are a client's doing, not the operator's.
		ErrorLog: errorLog(logger),
	}
	var p http.Protocols
	p.SetHTTP1(true)
	if sc.TLS.Enabled() {
		p.SetHTTP2(true)
		hs.TLSConfig = tc.tlsConfig()
	} else if !sc.DisableH2C {
		p.SetUnencryptedHTTP2(true)
	}
	hs.Protocols = &p
	return hs
}

// maxConnections is the configured limit, else half the open-file limit
// less a reserve for Redis, health checks and the admin listener: each
// client connection may hold one to a model server.
func maxConnections(sc ServerConfig) int {
	if sc.MaxConnections > 0 {
		return sc.MaxConnections
	}
	n := openFileLimit()
	if n == 0 || n > 1<<20 {
		return 1 << 19
	}
	return max(64, (int(n)-256)/2)
}

// The container's memory the gateway takes for GOMEMLIMIT, and what it
// needs beyond its L1 before open streams (measured with a full default L1).
const (
	memLimitRatio = 0.9
	beyondL1      = 200 << 20
)

// memoryFix says what to do when the L1 and what the gateway needs beyond
// it do not fit under limit (GOMEMLIMIT; 0: none); "" when they do.
func memoryFix(c cache.Config, limit int64) string {
	need := int64(c.L1MaxBytes) + beyondL1
	if !c.Enabled || limit == 0 || need <= limit {
		return ""
	}
	return fmt.Sprintf("raise the container's memory limit to at least %s (more for many open streams) or lower gateway.cache.l1MaxBytes",
		memLimitString(int64(float64(need)/memLimitRatio)+1<<20))
}

func memLimitString(limit int64) string {
	if limit == 0 {
		return "none"
	}
	return units.ByteSize(limit &^ (1<<20 - 1)).String() // whole MiB: 90% of a limit is rarely round
}

// limitsConfig merges per-key limits into the tenants' rules and shares the
// limits through Redis when the gateway has one.
func limitsConfig(cfg Config) limit.Config {
	lc := cfg.Effective().Limits
	tenants := make(map[string]limit.Rule, len(lc.Tenants))
	for k, v := range lc.Tenants {
		tenants[k] = v
	}
	for _, k := range cfg.Auth.Keys {
		if k.Limits != nil {
			tenants[k.Name] = *k.Limits
		}
	}
	lc.Tenants = tenants
	return lc
}

func redisOrNil(c *redis.Client) redis.UniversalClient {
	if c == nil {
		return nil
	}
	return c
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// adminToken reads the admin token from file, else from the environment.
func adminToken(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading gateway.adminTokenFile: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return strings.TrimSpace(os.Getenv(adminapi.TokenEnv)), nil
}

// listenHint says what to do about a failed listen: another process holds
// the address, or the address itself is wrong.
func listenHint(err error, flag string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return " (is another gateway running? pick another address with " + flag + ")"
	}
	return " (check the address; set it with " + flag + ")"
}

func errorLog(l *slog.Logger) *log.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return slog.NewLogLogger(l.Handler(), slog.LevelDebug)
}

func gcState(pct int) string {
	if pct == -2 {
		return "from the environment"
	}
	return strconv.Itoa(pct)
}
