package compose

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/gateway"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/gateway/upstream"
	"github.com/aideploy/aideploy/internal/units"
)

// startTestGateway runs the real gateway in-process on loopback with an empty
// default pool and no cache, so every answer comes from a model replica.
func startTestGateway(t testing.TB) (listen string, admin *adminapi.Client) {
	t.Helper()
	return startTestGatewayWith(t, nil)
}

// startTestGatewayWith starts the test gateway with change applied to its configuration.
func startTestGatewayWith(t testing.TB, change func(*gateway.Config)) (listen string, admin *adminapi.Client) {
	t.Helper()
	cfg := gateway.Default()
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Order = []string{"upstream"}
	cfg.Cache.Enabled = false
	cfg.ShutdownTimeout = units.Duration(5 * time.Second)
	token := "test-token"
	cfg.AdminTokenFile = filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(cfg.AdminTokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Pools = []upstream.PoolConfig{{Name: adminapi.DefaultPool, HealthCheck: upstream.HealthCheck{Path: "/health",
		Interval: units.Duration(200 * time.Millisecond), Timeout: units.Duration(2 * time.Second), HealthyThreshold: 1, UnhealthyThreshold: 3}}}
	if change != nil {
		change(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- gateway.Run(ctx, cfg, nil, gateway.Options{Started: func(a, b string) { started <- [2]string{a, b} }})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case a := <-started:
		return a[0], &adminapi.Client{BaseURL: "http://" + a[1], Token: token, HTTP: &http.Client{Timeout: 5 * time.Minute}}
	case err := <-done:
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start within 10s")
	}
	return "", nil
}

// answer is one request of the load, as the client saw it.
type answer struct {
	start, end time.Time
	stream     bool
	status     int
	version    string
	err        string
}

// load sends mixed streaming and non-streaming chat completions at rate per
// second through the gateway until stopped; every request is kept.
type load struct {
	mu      sync.Mutex
	answers []answer
	sent    atomic.Int64
	stop    func()
	done    chan struct{}
}

func startLoad(t testing.TB, addr string, rate int) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{stop: cancel, done: make(chan struct{})}
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	go func() {
		defer close(l.done)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-tick.C:
			}
			if i > 60*rate { // bounded: at most a minute of load
				continue
			}
			wg.Add(1)
			l.sent.Add(1)
			go func(stream bool) {
				defer wg.Done()
				a := request(client, "http://"+addr, stream)
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
			}(i%2 == 0)
		}
	}()
	t.Cleanup(func() { l.finish() })
	return l
}

func (l *load) finish() []answer {
	l.stop()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]answer(nil), l.answers...)
}

func request(c *http.Client, base string, stream bool) answer {
	body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"hi %d"}],"max_tokens":4,"stream":%v}`, time.Now().UnixNano(), stream)
	a := answer{start: time.Now(), stream: stream}
	defer func() { a.end = time.Now() }()
	resp, err := c.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		a.err = err.Error()
		a.end = time.Now()
		return a
	}
	defer resp.Body.Close()
	a.status, a.version = resp.StatusCode, resp.Header.Get("X-Model-Version")
	if stream {
		sc := bufio.NewScanner(resp.Body)
		done := false
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, `"error"`) {
				a.err = "stream error: " + line
			}
			if line == "data: [DONE]" {
				done = true
			}
		}
		if !done && a.err == "" && resp.StatusCode == 200 {
			a.err = "stream cut before [DONE]"
		}
	} else if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		a.err = err.Error()
	}
	a.end = time.Now()
	return a
}

// failed returns the answers that were not a complete 200.
func failed(as []answer) []answer {
	var out []answer
	for _, a := range as {
		if a.status != 200 || a.err != "" {
			out = append(out, a)
		}
	}
	return out
}
