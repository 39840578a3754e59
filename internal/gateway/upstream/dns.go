package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A dns+ target names many model servers at once: dns+http://chat-blue.ns.svc:8000
// is one http://ADDR:8000 target per A (or AAAA) record of chat-blue.ns.svc,
// re-resolved every DNSInterval, as Envoy's STRICT_DNS clusters and nginx's
// `resolve` do. A Kubernetes headless Service answers with one record per
// ready pod, so health checks, the breaker and least-outstanding balancing
// see each pod, and no Kubernetes client sits in the data path.
const dnsPrefix = "dns+"

// DNSInterval is how often dns+ targets are resolved again: short enough that
// a new pod takes traffic within seconds, long enough to be nothing to a DNS server.
const DNSInterval = 5 * time.Second

// dnsLookupTimeout bounds one resolution; a DNS server that does not answer
// leaves the targets as they are until the next round.
const dnsLookupTimeout = 2 * time.Second

// IsDNSTarget says whether a target URL is resolved through DNS (dns+http://…).
func IsDNSTarget(raw string) bool { return strings.HasPrefix(raw, dnsPrefix) }

// DNSTarget is a parsed dns+ target URL.
type DNSTarget struct {
	Scheme string // http or https: how each address is spoken to
	Host   string // the name resolved
	Port   string
	Path   string // kept on every expanded target, like a plain target's path
}

// ParseDNSTarget reads dns+http://NAME:PORT[/path] (or dns+https). The host
// must be a name, since an address has nothing to resolve, and the port is
// required, since a headless Service gives addresses without ports.
func ParseDNSTarget(raw string) (DNSTarget, error) {
	if !IsDNSTarget(raw) {
		return DNSTarget{}, fmt.Errorf("%q is not a dns+ target; write dns+http://NAME:PORT", raw)
	}
	u, err := url.Parse(strings.TrimPrefix(raw, dnsPrefix))
	if err != nil {
		return DNSTarget{}, fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return DNSTarget{}, fmt.Errorf("%q: scheme must be dns+http or dns+https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return DNSTarget{}, fmt.Errorf("%q: a dns+ target has only a name, a port and a path; drop the rest", raw)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" || port == "" {
		return DNSTarget{}, fmt.Errorf("%q needs a name and a port, e.g. dns+http://chat-blue.default.svc:8000", raw)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return DNSTarget{}, fmt.Errorf("%q names an address, which has nothing to resolve; use %s://%s", raw, u.Scheme, u.Host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return DNSTarget{}, fmt.Errorf("%q: port %q is not between 1 and 65535", raw, port)
	}
	path := u.Path
	if path == "/" {
		path = ""
	}
	return DNSTarget{Scheme: u.Scheme, Host: host, Port: port, Path: path}, nil
}

// URL is the target URL for one resolved address.
func (d DNSTarget) URL(a netip.Addr) string {
	return d.Scheme + "://" + net.JoinHostPort(a.Unmap().String(), d.Port) + d.Path
}

// Resolver looks names up; *net.Resolver is one, with a custom Dial in tests.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolverRef holds the Resolver WatchDNS was given.
type resolverRef struct{ r Resolver }

// resolverOf is the resolver of WatchDNS, or the system's before it runs.
func (p *Pool) resolverOf() Resolver {
	if ref := p.resolver.Load(); ref != nil {
		return ref.r
	}
	return net.DefaultResolver
}

// specNow returns the pool's target spec and its generation.
func (p *Pool) specNow() ([]TargetConfig, uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spec, p.specGen
}

// HasDNSTargets says whether the pool has targets to resolve: configured
// ones, or ones the admin API set.
func (p *Pool) HasDNSTargets() bool {
	spec, _ := p.specNow()
	return slices.ContainsFunc(spec, func(tc TargetConfig) bool { return IsDNSTarget(tc.URL) })
}

// WatchDNS resolves the pool's dns+ targets now and every interval until ctx
// ends, and makes the pool's targets its fixed targets plus one per address.
// The targets it resolves are the configured ones until the admin API sets
// others (a rollout's switch to another colour's headless Service), then
// those. A failed lookup (a timeout, SERVFAIL, an answer that does not parse)
// or an empty answer keeps the last targets and is logged: a pool that lost
// every target would refuse every request, while a pod that is really gone
// fails its health checks and is ejected anyway.
func (p *Pool) WatchDNS(ctx context.Context, r Resolver, interval time.Duration, log *slog.Logger) {
	p.resolver.Store(&resolverRef{r: r})
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if p.HasDNSTargets() {
			if err := p.ResolveDNS(ctx, r); err != nil && ctx.Err() == nil {
				log.Warn("resolving upstream targets; keeping the current ones", "pool", p.cfg.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// ResolveDNS resolves the pool's dns+ targets once and applies the result. On
// an error nothing changes, nor when the admin API set other targets meanwhile.
func (p *Pool) ResolveDNS(ctx context.Context, r Resolver) error {
	spec, gen := p.specNow()
	if !slices.ContainsFunc(spec, func(tc TargetConfig) bool { return IsDNSTarget(tc.URL) }) {
		return nil
	}
	next, err := expandDNS(ctx, r, spec)
	if err != nil {
		return err
	}
	return p.setTargets(next, gen)
}

// expandDNS resolves every dns+ target of tcs into one target per address,
// sorted, with the dns+ target's weight; other targets are kept as they are,
// and a URL listed twice once. A name without addresses is an error.
func expandDNS(ctx context.Context, r Resolver, tcs []TargetConfig) ([]TargetConfig, error) {
	var next []TargetConfig
	seen := map[string]bool{}
	add := func(tc TargetConfig) {
		if !seen[tc.URL] {
			seen[tc.URL] = true
			next = append(next, tc)
		}
	}
	for _, tc := range tcs {
		if !IsDNSTarget(tc.URL) {
			add(tc)
			continue
		}
		d, err := ParseDNSTarget(tc.URL)
		if err != nil {
			return nil, err
		}
		lctx, cancel := context.WithTimeout(ctx, dnsLookupTimeout)
		addrs, err := r.LookupNetIP(lctx, "ip", d.Host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("looking up %s: %w", d.Host, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("looking up %s: no addresses", d.Host)
		}
		slices.SortFunc(addrs, func(a, b netip.Addr) int { return a.Compare(b) })
		for _, a := range slices.Compact(addrs) {
			add(TargetConfig{URL: d.URL(a), Weight: tc.Weight, CAFile: tc.CAFile, Group: tc.Group})
		}
	}
	return next, nil
}

// setTargets makes tcs the pool's targets without a health gate (the health
// checks judge new ones as they judge every target), unless the spec changed
// since generation gen was read. Targets present before and after keep their
// state (weight, drain) and in-flight requests.
func (p *Pool) setTargets(tcs []TargetConfig, gen uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if gen != p.specGen {
		return nil // the admin API set other targets while this resolved
	}
	old := p.Targets()
	byURL := make(map[string]*Target, len(old))
	for _, t := range old {
		byURL[t.url] = t
	}
	next := make([]*Target, 0, len(tcs))
	var errs []error
	for _, tc := range tcs {
		if t, ok := byURL[tc.URL]; ok {
			next = append(next, t)
			delete(byURL, tc.URL)
			continue
		}
		t, err := newTarget(tc, p.timeout, p.bf)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.setGroup(tc.Group)
		next = append(next, t)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(byURL) == 0 && len(next) == len(old) {
		return nil // same targets: keep the slice, nothing to close
	}
	p.targets.Store(&next)
	for _, t := range byURL {
		go func() {
			// Requests already sent finish; idle connections close after the last.
			drainTarget(context.Background(), t, 30*time.Minute)
			t.closeIdle()
		}()
	}
	return nil
}

// KeepResolved gives p, a pool rebuilt by a configuration reload, the
// addresses that prev (the pool it replaces) resolved for p's dns+ targets,
// so that it serves from its first request rather than after its first
// resolution. The targets are rebuilt with p's timeouts and breakers; the next
// resolution corrects them.
func (p *Pool) KeepResolved(prev *Pool) error {
	spec, gen := p.specNow()
	if !p.HasDNSTargets() || prev.AdminChanged() {
		return nil
	}
	var dts []DNSTarget
	var next []TargetConfig
	for _, tc := range spec {
		if d, err := ParseDNSTarget(tc.URL); err == nil {
			dts = append(dts, d)
		} else {
			next = append(next, tc)
		}
	}
	seen := map[string]bool{}
	for _, tc := range next {
		seen[tc.URL] = true
	}
	for _, t := range prev.Targets() {
		if seen[t.url] || !slices.ContainsFunc(dts, func(d DNSTarget) bool { return d.expanded(t.url) }) {
			continue
		}
		seen[t.url] = true
		next = append(next, TargetConfig{URL: t.url, Weight: int(t.weight.Load())})
	}
	return p.setTargets(next, gen)
}

// expanded says whether raw is one of the URLs d expands to: same scheme, port
// and path, and an address for the host.
func (d DNSTarget) expanded(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != d.Scheme || u.Port() != d.Port || strings.TrimSuffix(u.Path, "/") != strings.TrimSuffix(d.Path, "/") {
		return false
	}
	_, err = netip.ParseAddr(u.Hostname())
	return err == nil
}
