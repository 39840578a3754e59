package upstream

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/units"
	"github.com/aideploy/aideploy/internal/validate"
)

// PoolConfig describes one pool of upstream targets.
type PoolConfig struct {
	// Name identifies the pool in the admin API and metrics.
	Name string `yaml:"name" json:"name"`
	// Targets are the model servers: http://host:port or unix:///path.sock.
	Targets []TargetConfig `yaml:"targets" json:"targets"`
	// HealthCheck probes each target actively; an empty path turns it off.
	HealthCheck HealthCheck `yaml:"healthCheck" json:"healthCheck"`
	// MaxInflight bounds concurrent requests per target. 0 (the default) is the
	// adaptive limit, which finds each target's capacity from its latency; a
	// positive number fixes the bound; -1 turns it off.
	MaxInflight int `yaml:"maxInflight" json:"maxInflight"`
	// Queue bounds the requests that wait for a free slot.
	Queue Queue `yaml:"queue" json:"queue"`
	// PassiveFailures is how many consecutive connection failures eject a target.
	PassiveFailures int `yaml:"passiveFailures" json:"passiveFailures"`
	// EjectFor is how long a passively ejected target gets no traffic.
	EjectFor units.Duration `yaml:"ejectFor" json:"ejectFor"`
}

// TargetConfig is one upstream address with its weight.
type TargetConfig struct {
	// URL is http://host:port, https://host:port, unix:///path.sock, or
	// dns+http://NAME:PORT for one target per address NAME resolves to.
	URL string `yaml:"url" json:"url"`
	// Weight is the relative share of traffic; 0 means 1.
	Weight int `yaml:"weight,omitempty" json:"weight,omitempty"`
	// CAFile is a PEM file of the CAs an https:// target's certificate is checked against
	// instead of the system's (a private CA); read when the pool is built.
	CAFile string `yaml:"caFile,omitempty" json:"caFile,omitempty"`
	// Group is the version the target belongs to, set by the admin API (a
	// rollout's colour); a dns+ target's addresses keep it. Not in the file.
	Group string `yaml:"-" json:"-"`
}

// HealthCheck configures active probing.
type HealthCheck struct {
	// Path is probed with GET; 2xx is healthy. Empty disables active checks.
	Path string `yaml:"path" json:"path"`
	// Interval between probes.
	Interval units.Duration `yaml:"interval" json:"interval"`
	// Timeout of one probe.
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
	// HealthyThreshold is how many consecutive passes make a target healthy.
	HealthyThreshold int `yaml:"healthyThreshold" json:"healthyThreshold"`
	// UnhealthyThreshold is how many consecutive failures make it unhealthy.
	UnhealthyThreshold int `yaml:"unhealthyThreshold" json:"unhealthyThreshold"`
}

// Queue bounds waiting for a free slot when every target is at its limit.
type Queue struct {
	// Size is how many requests may wait; past it requests get a fast 503.
	// 0 (the default) sizes it to a quarter of the usable targets' limits, so
	// a request waits about a quarter of an answer's time; -1 turns it off.
	Size int `yaml:"size" json:"size"`
	// Timeout is how long one request may wait before a 503 (default 1s).
	Timeout units.Duration `yaml:"timeout" json:"timeout"`
}

// Timeouts of upstream calls. Generations are slow, so the defaults are generous
// where the model works and short where only the network is involved.
type Timeouts struct {
	// Connect bounds establishing a connection.
	Connect units.Duration `yaml:"connect" json:"connect"`
	// ResponseHeader bounds the wait for the status line: the model's queue.
	ResponseHeader units.Duration `yaml:"responseHeader" json:"responseHeader"`
	// Request bounds the whole exchange, streams included.
	Request units.Duration `yaml:"request" json:"request"`
	// Idle is how long an unused keep-alive connection is kept.
	Idle units.Duration `yaml:"idle" json:"idle"`
}

// DefaultTimeouts suit slow generations: 5s connect, 30s to the first header,
// 10m for a whole stream, 90s idle. The adaptive limit keeps requests out of
// the model's queue, so the first header waits for the model's work alone: a
// stream's first token or a whole answer. A model that sends nothing for 30s
// has stalled, and the timeout counts against its breaker; a non-streamed
// generation that takes longer needs a longer responseHeader.
func DefaultTimeouts() Timeouts {
	return Timeouts{
		Connect:        units.Duration(5 * time.Second),
		ResponseHeader: units.Duration(30 * time.Second),
		Request:        units.Duration(10 * time.Minute),
		Idle:           units.Duration(90 * time.Second),
	}
}

// DefaultHealthCheck probes /health every second with a 1s timeout; two
// failures in a row take a target out, one pass brings it back. A replica that
// dies is out within about 2s, and its requests in the meantime go to another
// target, since a refused connection is retried elsewhere.
func DefaultHealthCheck() HealthCheck {
	return HealthCheck{
		Path:               "/health",
		Interval:           units.Duration(time.Second),
		Timeout:            units.Duration(time.Second),
		HealthyThreshold:   1,
		UnhealthyThreshold: 2,
	}
}

// DefaultQueueTimeout is how long a request waits for a slot before a 503:
// long enough to ride out a burst, short enough that overload is answered
// at once and never as a client's timeout.
const DefaultQueueTimeout = units.Duration(time.Second)

// DefaultSlotQueueTimeout is how long a request may wait for a slot of a
// model server whose limit is its own slots (see SlotQueue): ten seconds, a
// few answers of an LLM that takes seconds each. The server would have kept
// the request in its own queue for as long as it took; the gateway bounds
// that wait and answers a 503 with Retry-After past it.
const DefaultSlotQueueTimeout = units.Duration(10 * time.Second)

// SlotQueue is the queue in front of replicas replicas of a model server that
// runs slots requests at once and queues the rest itself, without a time
// bound (Ollama: OLLAMA_NUM_PARALLEL, past which it queues up to
// OLLAMA_MAX_QUEUE, 512), when the pool's limit is those slots. Every request
// past the slots would have waited in the server; the gateway keeps them
// instead, with the server's own bound (512, or one batch per replica when
// that is more) and a time bound (DefaultSlotQueueTimeout); past either a
// request gets a 503 with Retry-After. The adaptive limit's automatic queue
// (a quarter of the slots, 1s) is sized from latencies it measures, which a
// fixed limit does not. Measured with the Ollama preset (16 slots, 2
// replicas) on a 2-core host under 50-60 completions a second, rolled out
// from v1 to v2 (v2's start takes CPU from v1): a queue of 8 turned 50% away,
// one batch per replica (32) 2-16%, 512 none once the host was not also
// running other work.
// ollamaMaxQueue is Ollama's own default bound on waiting requests (OLLAMA_MAX_QUEUE).
const ollamaMaxQueue = 512

func SlotQueue(slots, replicas int) Queue {
	return Queue{Size: max(ollamaMaxQueue, max(1, slots)*max(1, replicas)), Timeout: DefaultSlotQueueTimeout}
}

// SetDefaults fills zero fields.
func (c *PoolConfig) SetDefaults() {
	if c.Name == "" {
		c.Name = "default"
	}
	d := DefaultHealthCheck()
	if c.HealthCheck == (HealthCheck{}) {
		c.HealthCheck = d
	}
	if c.HealthCheck.Interval == 0 {
		c.HealthCheck.Interval = d.Interval
	}
	if c.HealthCheck.Timeout == 0 {
		c.HealthCheck.Timeout = d.Timeout
	}
	if c.HealthCheck.HealthyThreshold == 0 {
		c.HealthCheck.HealthyThreshold = d.HealthyThreshold
	}
	if c.HealthCheck.UnhealthyThreshold == 0 {
		c.HealthCheck.UnhealthyThreshold = d.UnhealthyThreshold
	}
	if c.Queue.Timeout == 0 {
		c.Queue.Timeout = DefaultQueueTimeout
	}
	if c.PassiveFailures == 0 {
		c.PassiveFailures = 5
	}
	if c.EjectFor == 0 {
		c.EjectFor = units.Duration(10 * time.Second)
	}
}

// Validate records every problem of the pool.
func (c PoolConfig) Validate(errs validate.Errors) {
	if c.Name == "" {
		errs.Addf("name", "must not be empty")
	}
	if len(c.Targets) == 0 {
		errs.Addf("targets", "needs at least one target, e.g. http://127.0.0.1:8000")
	}
	seen := map[string]bool{}
	for i, t := range c.Targets {
		e := errs.At(fmt.Sprintf("targets[%d]", i))
		if IsDNSTarget(t.URL) {
			if _, err := ParseDNSTarget(t.URL); err != nil {
				e.Addf("url", "%v", err)
			}
		} else if _, err := ParseTargetURL(t.URL); err != nil {
			e.Addf("url", "%v", err)
		}
		// The same model server twice would take twice its share, and a
		// switch or drain of one of them would leave the other serving.
		if u := strings.TrimRight(t.URL, "/"); seen[u] {
			e.Addf("url", "(%q) is listed twice in the pool; list it once and give it a weight", t.URL)
		} else {
			seen[u] = true
		}
		e.NonNegative("weight", t.Weight)
	}
	if c.HealthCheck.Path != "" {
		h := errs.At("healthCheck")
		if !strings.HasPrefix(c.HealthCheck.Path, "/") {
			h.Addf("path", "(%q) must start with /", c.HealthCheck.Path)
		}
		if c.HealthCheck.Interval <= 0 {
			h.Addf("interval", "(%s) must be positive", c.HealthCheck.Interval)
		}
		if c.HealthCheck.Timeout <= 0 {
			h.Addf("timeout", "(%s) must be positive", c.HealthCheck.Timeout)
		}
		h.Positive("healthyThreshold", c.HealthCheck.HealthyThreshold)
		h.Positive("unhealthyThreshold", c.HealthCheck.UnhealthyThreshold)
	}
	if c.MaxInflight < -1 {
		errs.Addf("maxInflight", "(%d) must be 0 (adaptive), a fixed bound, or -1 (none)", c.MaxInflight)
	}
	if c.Queue.Size < -1 {
		errs.At("queue").Addf("size", "(%d) must be 0 (sized to the limits), a fixed size, or -1 (no queue)", c.Queue.Size)
	}
	if c.Queue.Timeout < 0 {
		errs.At("queue").Addf("timeout", "(%s) must not be negative", c.Queue.Timeout)
	}
	errs.NonNegative("passiveFailures", c.PassiveFailures)
}

// Validate records every problem of the timeouts.
func (t Timeouts) Validate(errs validate.Errors) {
	for name, d := range map[string]units.Duration{"connect": t.Connect, "responseHeader": t.ResponseHeader, "request": t.Request, "idle": t.Idle} {
		if d <= 0 {
			errs.Addf(name, "(%s) must be positive", d)
		}
	}
}

// ParseTargetURL accepts http://host:port[/prefix] and unix:///path.sock.
func ParseTargetURL(s string) (*url.URL, error) {
	if scheme, _, _ := strings.Cut(s, ":"); !strings.Contains(s, "://") && scheme != "http" && scheme != "https" && scheme != "unix" {
		// No scheme: say which one the value was most likely meant with.
		if strings.HasPrefix(s, "/") {
			return nil, fmt.Errorf("%q has no scheme; use unix://%s for a socket", s, s)
		}
		if _, _, err := net.SplitHostPort(s); err == nil {
			return nil, fmt.Errorf("%q has no scheme; use http://%s", s, s)
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL: %v", s, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("%q has no host; use %s://host:port", s, u.Scheme)
		}
	case "unix":
		if u.Path == "" || u.Host != "" {
			return nil, fmt.Errorf("%q has no socket path; use unix:///path/to.sock", s)
		}
	default:
		return nil, fmt.Errorf("%q: scheme must be http, https or unix", s)
	}
	return u, nil
}
