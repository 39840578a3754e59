package gateway

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/aideploy/aideploy/internal/gateway/breaker"
	"github.com/aideploy/aideploy/internal/gateway/cache"
	"github.com/aideploy/aideploy/internal/gateway/limit"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// Config is the gateway section of aideploy.yaml.
type Config struct {
	// Listen is the address clients connect to.
	Listen string `yaml:"listen" json:"listen"`
	// AdminListen is the admin API, /metrics and health address; loopback by default.
	AdminListen string `yaml:"adminListen" json:"adminListen"`
	// AdminTokenFile holds the admin bearer token; else AIDEPLOY_ADMIN_TOKEN is read.
	AdminTokenFile string `yaml:"adminTokenFile,omitempty" json:"adminTokenFile,omitempty"`
	// RedisURL shares cache and limits between replicas, e.g. redis://127.0.0.1:6379/0; empty runs in memory.
	RedisURL string `yaml:"redisURL,omitempty" json:"redisURL,omitempty"`
	// Pools are the upstream pools; the one named "default" serves every route not routed elsewhere.
	Pools []upstream.PoolConfig `yaml:"pools" json:"pools"`
	// Timeouts of upstream calls.
	Timeouts upstream.Timeouts `yaml:"timeouts" json:"timeouts"`
	// MaxBodyBytes bounds request bodies; larger ones get 413.
	MaxBodyBytes units.ByteSize `yaml:"maxBodyBytes" json:"maxBodyBytes"`
	// Auth turns on API keys.
	Auth Auth `yaml:"auth" json:"auth"`
	// Order is the order of the steps before the upstream: "cache", "limit", ending with "upstream".
	Order []string `yaml:"order" json:"order"`
	// Degraded is the answer when no upstream can take a request and nothing is cached.
	Degraded Degraded `yaml:"degraded" json:"degraded"`
	// Routes opens paths beyond the built-in allow-list (POST /v1/chat/completions,
	// /v1/completions, /v1/embeddings; GET /v1/models, /v1/models/{id...}) and
	// sends routes to pools other than "default". Every other request gets 404.
	Routes []Route `yaml:"routes,omitempty" json:"routes,omitempty"`
	// Cache is the answer cache: L1 in process, L2 in Redis.
	Cache cache.Config `yaml:"cache" json:"cache"`
	// Limits are request and token limits per tenant and route, shared through Redis when redisURL is set.
	Limits limit.Config `yaml:"limits" json:"limits"`
	// Breaker opens per upstream target on failures and probes it again after a cooldown.
	Breaker breaker.Config `yaml:"breaker" json:"breaker"`
	// ShutdownTimeout bounds how long in-flight requests and streams may finish on shutdown.
	ShutdownTimeout units.Duration `yaml:"shutdownTimeout" json:"shutdownTimeout"`
	// StreamUsage is "inject" (the default) to ask the model for token usage at the end of
	// every stream (stream_options.include_usage), so that token limits and metrics count
	// streams, and to drop that extra chunk for clients that did not ask for it; "passthrough"
	// forwards stream requests unchanged (for a model server that refuses stream_options).
	StreamUsage string `yaml:"streamUsage,omitempty" json:"streamUsage,omitempty"`
	// Server is the client listener: TLS, h2c, connection and header limits, timeouts.
	Server ServerConfig `yaml:"server" json:"server"`
	// Enabled puts the gateway in front of the model on Kubernetes too (it always is on
	// Docker); false renders no gateway, and clients reach the model's Service directly.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Kubernetes sizes the gateway's own Deployment on Kubernetes.
	Kubernetes Kubernetes `yaml:"kubernetes" json:"kubernetes"`
}

// The values of Config.StreamUsage.
const (
	StreamUsageInject      = "inject"
	StreamUsagePassthrough = "passthrough"
)

// Auth configures API keys.
type Auth struct {
	// Enabled requires a known key on every proxied request.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Keys are the accepted keys, stored as SHA-256 hashes.
	Keys []Key `yaml:"keys,omitempty" json:"keys,omitempty"`
}

// Key is one API key.
type Key struct {
	// Name is the tenant the key belongs to: cache isolation and limits use it.
	Name string `yaml:"name" json:"name"`
	// SHA256 is the hex SHA-256 of the key (e.g. `printf %s KEY | sha256sum`).
	SHA256 string `yaml:"sha256" json:"sha256"`
	// Limits overrides the tenant's limits (like limits.tenants under this name).
	Limits *limit.Rule `yaml:"limits,omitempty" json:"limits,omitempty"`
}

// Degraded is the "busy, try later" answer.
type Degraded struct {
	// Status is the HTTP status, 503 by default.
	Status int `yaml:"status" json:"status"`
	// RetryAfter is sent as Retry-After.
	RetryAfter units.Duration `yaml:"retryAfter" json:"retryAfter"`
	// Body is the JSON body; empty means an OpenAI-style "service busy" error.
	Body string `yaml:"body,omitempty" json:"body,omitempty"`
}

// Route opens one path to clients and names the pool that serves it.
type Route struct {
	// Path is an http.ServeMux path pattern such as /tokenize or /v1/models/{id...}.
	Path string `yaml:"path" json:"path"`
	// Methods are the methods opened on Path, e.g. [POST]; a built-in route keeps its own too.
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	// Pool is the pool name that serves it; "default" when left out.
	Pool string `yaml:"pool,omitempty" json:"pool,omitempty"`
}

// RedactURL hides the password of a URL such as a redisURL, for logs and
// messages; a string that is not a URL loses whatever precedes an "@".
func RedactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if u.User == nil {
			return s
		}
		return u.Redacted()
	}
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return "xxxxx" + s[i:]
	}
	return s
}

// shellSafe says whether s can be pasted into a shell command unquoted:
// letters, digits and . _ - / : @ + = only, so no list of what a shell
// treats specially has to be kept.
func shellSafe(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@+=") == ""
}

// Effective returns c as the gateway runs it: with a redisURL, limits are
// shared through Redis whatever limits.backend says.
func (c Config) Effective() Config {
	if c.RedisURL != "" {
		c.Limits.Backend = limit.BackendRedis
	}
	return c
}

// Default returns the embedded default: loopback listeners, one pool, in-memory tiers.
func Default() Config {
	return Config{
		Listen:          "127.0.0.1:8080",
		AdminListen:     "127.0.0.1:8081",
		Timeouts:        upstream.DefaultTimeouts(),
		MaxBodyBytes:    8 << 20,
		Order:           []string{"cache", "limit", "upstream"},
		Degraded:        Degraded{Status: 503, RetryAfter: units.Duration(5 * time.Second)},
		ShutdownTimeout: units.Duration(60 * time.Second),
		Cache:           cache.Default(),
		Breaker:         breaker.Default(),
		Limits:          limit.Default(),
		StreamUsage:     StreamUsageInject,
		Server:          defaultServer(),
		Kubernetes:      DefaultKubernetes(),
		Enabled:         new(true),
	}
}

// SetDefaults fills fields left empty after loading.
func (c *Config) SetDefaults() {
	d := Default()
	if c.Listen == "" {
		c.Listen = d.Listen
	}
	if c.AdminListen == "" {
		c.AdminListen = d.AdminListen
	}
	if c.Timeouts == (upstream.Timeouts{}) {
		c.Timeouts = d.Timeouts
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if len(c.Order) == 0 {
		c.Order = d.Order
	}
	if c.StreamUsage == "" {
		c.StreamUsage = d.StreamUsage
	}
	if c.Degraded.Status == 0 {
		c.Degraded.Status = d.Degraded.Status
	}
	if c.Degraded.RetryAfter == 0 {
		c.Degraded.RetryAfter = d.Degraded.RetryAfter
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = d.ShutdownTimeout
	}
	c.Server.setDefaults()
	c.Kubernetes.setDefaults()
	if c.Enabled == nil {
		c.Enabled = new(true)
	}
	for i := range c.Pools {
		c.Pools[i].SetDefaults()
	}
}

// Validate records every problem; it does no I/O.
func (c Config) Validate(errs validate.Errors) {
	for name, addr := range map[string]string{"listen": c.Listen, "adminListen": c.AdminListen} {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			errs.Addf(name, "(%q) must be host:port, e.g. 127.0.0.1:8080", addr)
			continue
		}
		// A named port ("http") is net.Listen's to resolve; a number must fit.
		if n, err := strconv.Atoi(port); err == nil && (n < 0 || n > 65535) {
			errs.Addf(name, "(%q) has port %d, out of range 0-65535 (0 picks a free one)", addr, n)
		}
	}
	if c.RedisURL != "" {
		if !strings.Contains(c.RedisURL, "://") {
			u := RedactURL(c.RedisURL)
			errs.Addf("redisURL", "(%q) has no scheme; use redis://%s/0 (rediss:// for TLS)", u, u)
		} else if _, err := redis.ParseURL(c.RedisURL); err != nil {
			errs.Addf("redisURL", "(%q) %v; use redis://HOST:PORT/DB (rediss:// for TLS)", RedactURL(c.RedisURL), strings.TrimPrefix(err.Error(), "redis: "))
		}
	}
	names := map[string]bool{}
	for i, p := range c.Pools {
		if names[p.Name] {
			errs.At(fmt.Sprintf("pools[%d]", i)).Addf("name", "(%q) is used twice", p.Name)
		}
		names[p.Name] = true
		p.Validate(errs.At(fmt.Sprintf("pools[%d]", i)))
	}
	if len(c.Pools) > 0 && !names["default"] {
		errs.Addf("pools", "needs a pool named \"default\", the pool for every route not routed elsewhere; rename one or add one")
	}
	c.Timeouts.Validate(errs.At("timeouts"))
	c.Server.validate(errs.At("server"))
	c.Kubernetes.validate(errs.At("kubernetes"))
	if c.MaxBodyBytes <= 0 {
		errs.Addf("maxBodyBytes", "(%s) must be positive", c.MaxBodyBytes)
	}
	seen := map[string]bool{}
	for i, k := range c.Auth.Keys {
		e := errs.At(fmt.Sprintf("auth.keys[%d]", i))
		if k.Name == "" {
			e.Addf("name", "must name the tenant")
		}
		if b, err := hex.DecodeString(k.SHA256); err != nil || len(b) != 32 {
			name := k.Name
			if !shellSafe(name) {
				name = "NAME" // not safe to paste into a shell as it is
			}
			e.Addf("sha256", "must be the key's SHA-256 in 64 hex digits, never the key itself; `aideploy gateway key %s` makes a key and its entry", name)
		} else if seen[k.SHA256] {
			e.Addf("sha256", "is listed twice")
		}
		seen[k.SHA256] = true
	}
	if c.Auth.Enabled && len(c.Auth.Keys) == 0 {
		errs.At("auth").Addf("keys", "needs at least one key when auth is enabled")
	}
	c.validateOrder(errs)
	if c.StreamUsage != "" {
		errs.OneOf("streamUsage", c.StreamUsage, StreamUsageInject, StreamUsagePassthrough)
	}
	c.Cache.Validate(errs.At("cache"))
	c.Breaker.Validate(errs.At("breaker"))
	c.Limits.Validate(errs.At("limits"))
	if c.Degraded.Status < 400 || c.Degraded.Status > 599 {
		errs.At("degraded").Addf("status", "(%d) must be a 4xx or 5xx status", c.Degraded.Status)
	}
	validateRoutes(c.Routes, names, errs)
}

func (c Config) validateOrder(errs validate.Errors) {
	seen := map[string]bool{}
	for i, s := range c.Order {
		errs.OneOf(fmt.Sprintf("order[%d]", i), s, "cache", "limit", "upstream")
		if seen[s] {
			errs.Addf(fmt.Sprintf("order[%d]", i), "(%q) is listed twice", s)
		}
		seen[s] = true
	}
	if n := len(c.Order); n == 0 || c.Order[n-1] != "upstream" {
		errs.Addf("order", "must end with \"upstream\", e.g. [cache, limit, upstream]")
	}
}
