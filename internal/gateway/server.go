package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/KimMachineGun/automemlimit/memlimit"
	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/gateway/admin"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/front"
	"github.com/aideploy/aideploy/internal/gateway/gctune"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/metrics"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
)

// Options tune Run beyond the configuration.
type Options struct {
	// Reload loads the configuration again on SIGHUP; nil ignores SIGHUP.
	Reload func() (Config, error)
	// Started is called once both listeners accept connections, with their addresses.
	Started func(addr, adminAddr string)
}

// Server swaps whole gateways atomically: a reload builds a new one and the
// old one finishes its requests and streams.
type Server struct {
	cur  atomic.Pointer[Gateway]
	deps Deps
	log  *slog.Logger

	mu     sync.Mutex // serialises reloads
	ctx    context.Context
	cancel context.CancelFunc // stops the current gateway's health checks
	wg     sync.WaitGroup
}

// NewServer builds the first gateway; Start its health checks with Serve or Reload.
func NewServer(ctx context.Context, cfg Config, d Deps) (*Server, error) {
	g, err := New(cfg, d)
	if err != nil {
		return nil, err
	}
	s := &Server{deps: d, log: d.Logger, ctx: ctx}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.start(g)
	return s, nil
}

func (s *Server) start(g *Gateway) {
	gctx, cancel := context.WithCancel(s.ctx)
	s.cur.Store(g)
	s.cancel = cancel
	s.wg.Add(1)
	go func() { defer s.wg.Done(); g.Run(gctx) }()
}

// ServeHTTP hands the request to the current gateway.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.cur.Load().ServeHTTP(w, r) }

// Gateway is the gateway serving now.
func (s *Server) Gateway() *Gateway { return s.cur.Load() }

// Reload builds a gateway from cfg and swaps it in; the old one keeps serving
// the requests it holds and is retired once they end. Listeners, Redis, the
// cache and the limiter are kept, and so are the targets of pools the admin
// API changed (a rollout's switch): the file's targets for those apply after
// a restart.
func (s *Server) Reload(cfg Config) error {
	g, err := New(cfg, s.deps)
	if err != nil {
		return fmt.Errorf("reloading the gateway: %w", err)
	}
	s.mu.Lock()
	old, oldCancel := s.cur.Load(), s.cancel
	for name, prev := range old.Pools() {
		p, ok := g.Pools()[name]
		if !ok || !prev.AdminChanged() {
			continue
		}
		if err := p.Adopt(prev); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("reloading the gateway: %w", err)
		}
		s.log.Warn("pool keeps the targets set through the admin API; the file's targets for it apply after a restart",
			"pool", name, "targets", len(p.Targets()))
	}
	s.start(g)
	s.mu.Unlock()
	go func() {
		for old.Inflight() > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		oldCancel()
		for _, p := range old.Pools() {
			p.CloseIdle()
		}
	}()
	return nil
}

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
	gc := gctune.Start(uint64(cfg.GCHeapTarget))
	defer gc.Stop()
	memLimit, restoreMem, err := gctune.MemoryLimit(memlimit.FromCgroup, memLimitRatio)
	if err != nil {
		logger.Warn("the container's memory limit could not be read; GOMEMLIMIT stays unset", "err", err)
	}
	defer restoreMem()
	if fix := memoryFix(cfg.Cache, memLimit); fix != "" {
		logger.Warn("gateway.cache.l1MaxBytes leaves too little of the container's memory",
			"l1MaxBytes", cfg.Cache.L1MaxBytes, "gomemlimit", memLimitString(memLimit), "fix", fix)
	}
	m := metrics.New()
	d := Deps{Logger: logger, Metrics: m}
	bm := breaker.NewMetrics(m.Registry)
	bcfg := cfg.Breaker
	d.Breakers = func(target string) upstream.Breaker { return breaker.New(target, bcfg, bm, breaker.WithLogger(logger)) }
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
	if cfg.Cache.Enabled {
		c := cache.New(cfg.Cache, redisOrNil(rdb), cache.NewMetrics(m.Registry), logger)
		defer c.Close()
		d.Cache = c
	}
	if cfg.Limits.Enabled {
		lc := limitsConfig(cfg)
		lim := limit.New(lc, redisOrNil(rdb), limit.NewMetrics(m.Registry), logger)
		defer lim.Close()
		d.Limiter = lim
	}
	bctx, stop := context.WithCancel(context.Background())
	defer stop()
	srv, err := NewServer(bctx, cfg, d)
	if err != nil {
		return err
	}
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
	hs := &front.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, Logger: logger}
	as := &http.Server{Handler: admin.Handler(admin.Options{
		Pools: func() map[string]*upstream.Pool { return srv.Gateway().Pools() }, Token: func() string { return *tokenNow.Load() },
		Registry: m.Registry, Ready: func() bool { return srv.Gateway().Ready() },
	}), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- hs.Serve(ln) }()
	go func() { errc <- as.Serve(aln) }()
	logger.Info("gateway serving", "listen", ln.Addr().String(), "admin", aln.Addr().String(),
		"admin_api", adminAPIState(token), "pools", poolsSummary(cfg.Pools), "auth", authState(cfg.Auth),
		"cache", cacheState(cfg.Cache, rdb != nil), "limits", limitsState(cfg),
		"gc_heap_target", gcTarget(gc, cfg.GCHeapTarget), "gomemlimit", memLimitString(memLimit))
	if opts.Started != nil {
		opts.Started(ln.Addr().String(), aln.Addr().String())
	}

	hup := make(chan os.Signal, 1)
	if opts.Reload != nil {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for {
		select {
		case <-hup:
			next, err := opts.Reload()
			var tok string
			if err == nil {
				tok, err = adminToken(next.AdminTokenFile)
			}
			if err == nil {
				err = srv.Reload(next)
			}
			if err != nil {
				logger.Error("reload refused; the old configuration stays", "err", err)
				continue
			}
			if old := tokenNow.Swap(&tok); *old != tok {
				logger.Info("configuration reloaded; the admin token changed", "admin_api", adminAPIState(tok))
			} else {
				logger.Info("configuration reloaded")
			}
			continue
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("serving: %w", err)
			}
		case <-ctx.Done():
		}
		break
	}
	logger.Info("gateway shutting down; draining in-flight requests", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout.D())
	defer cancel()
	err = hs.Shutdown(sctx)
	if err != nil {
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

// gcTarget is the heap target for the log: "off" when the environment's
// GOGC or GOMEMLIMIT rule.
func gcTarget(gc *gctune.Tuner, target units.ByteSize) string {
	if gc == nil {
		return "off (GOGC or GOMEMLIMIT set)"
	}
	return target.String()
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
