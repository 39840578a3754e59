package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/testutil/redistest"
	"github.com/aideploy/aideploy/internal/units"
)

type running struct {
	url, admin string
	stop       context.CancelFunc
	done       chan error
}

// runGateway runs Run on free loopback ports until the test ends.
func runGateway(t *testing.T, cfg Config, opts Options) *running {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: runs whole gateways under load; skipped under -short")
	}
	cfg.Listen, cfg.AdminListen = "127.0.0.1:0", "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{stop: cancel, done: make(chan error, 1)}
	started := make(chan struct{})
	opts.Started = func(a, b string) { r.url, r.admin = "http://"+a, "http://"+b; close(started) }
	go func() {
		r.done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})), opts)
	}()
	select {
	case <-started:
	case err := <-r.done:
		t.Fatalf("gateway did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		<-r.done
	})
	return r
}

// load sends non-stream requests from workers until stop closes; it returns the
// number of answers and the failures.
func load(t *testing.T, url string, workers int, body func(i int) string, stop <-chan struct{}) (ok, failed *atomic.Int64, wait func()) {
	ok, failed = &atomic.Int64{}, &atomic.Int64{}
	var wg sync.WaitGroup
	var seq atomic.Int64
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(url+"/v1/chat/completions", "application/json", strings.NewReader(body(int(seq.Add(1)))))
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					t.Logf("request got %d: %s", resp.StatusCode, b)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	return ok, failed, wg.Wait
}

func uniqueBody(i int) string {
	return `{"model":"fake-model","messages":[{"role":"user","content":"q` + strconv.Itoa(i) + `"}],"max_tokens":4}`
}

func TestIntegrationCacheL2BackfillsL1(t *testing.T) {
	rs := redistest.New(t)
	fm, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.RedisURL = "redis://" + rs.Addr + "/0"
	a := runGateway(t, cfg, Options{})
	b := runGateway(t, cfg, Options{})
	steps := []struct {
		gw            *running
		cache, level  string
		upstreamCalls int64
	}{
		{a, "MISS", "", 1},
		{b, "HIT", "L2", 1},
		{b, "HIT", "L1", 1},
		{a, "HIT", "L1", 1},
	}
	for i, s := range steps {
		resp, _ := post(t, s.gw.url+"/v1/chat/completions", chatBody)
		if resp.Header.Get("X-Cache") != s.cache || resp.Header.Get("X-Cache-Level") != s.level || fm.Stats().Requests != s.upstreamCalls {
			t.Fatalf("step %d: X-Cache=%q level=%q upstream=%d", i, resp.Header.Get("X-Cache"), resp.Header.Get("X-Cache-Level"), fm.Stats().Requests)
		}
	}
}

func TestIntegrationRedisKilledDuringLoad(t *testing.T) {
	rs := redistest.New(t)
	_, up := fake(t, nil)
	cfg := testConfig(up)
	cfg.RedisURL = "redis://" + rs.Addr + "/0"
	g := runGateway(t, cfg, Options{})
	stop := make(chan struct{})
	ok, failed, wait := load(t, g.url, 8, func(i int) string { return uniqueBody(i % 50) }, stop)
	time.Sleep(500 * time.Millisecond)
	rs.Kill()
	before := ok.Load()
	time.Sleep(time.Second)
	close(stop)
	wait()
	if failed.Load() != 0 || ok.Load() <= before {
		t.Fatalf("with Redis killed: %d failed, %d answered (%d before the kill)", failed.Load(), ok.Load(), before)
	}
	t.Logf("%d requests answered, %d after Redis was killed, 0 failed", ok.Load(), ok.Load()-before)
}

func TestIntegrationGracefulShutdownDrainsStreams(t *testing.T) {
	_, up := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 50 * time.Millisecond; o.Tokens = 20 })
	g := runGateway(t, testConfig(up), Options{})
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(`{"stream":true,"max_tokens":20}`))
			if err != nil {
				results <- err.Error()
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || !strings.HasSuffix(string(b), "data: [DONE]\n\n") {
				results <- "cut stream: " + string(b[max(0, len(b)-80):])
				return
			}
			results <- "ok"
		}()
	}
	time.Sleep(200 * time.Millisecond) // streams are in flight, ~1s each
	g.stop()
	if err := <-g.done; err != nil {
		t.Fatalf("Run returned %v", err)
	}
	g.done <- nil // for the cleanup
	wg.Wait()
	close(results)
	for r := range results {
		if r != "ok" {
			t.Fatal(r)
		}
	}
	if _, err := http.Get(g.url + "/healthz"); err == nil {
		t.Fatal("the listener still accepts after shutdown")
	}
}

func TestIntegrationSIGHUPReloadLosesNothing(t *testing.T) {
	fm1, up1 := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 5 * time.Millisecond })
	fm2, up2 := fake(t, nil)
	next := testConfig(up2)
	g := runGateway(t, testConfig(up1), Options{Reload: func() (Config, error) { return next, nil }})
	stop := make(chan struct{})
	ok, failed, wait := load(t, g.url, 8, uniqueBody, stop)
	time.Sleep(300 * time.Millisecond)
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for fm2.Stats().Requests == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wait()
	if failed.Load() != 0 || fm2.Stats().Requests == 0 {
		t.Fatalf("reload: %d failed of %d; new upstream saw %d", failed.Load(), ok.Load(), fm2.Stats().Requests)
	}
	n1 := fm1.Stats().Requests
	post(t, g.url+"/v1/chat/completions", uniqueBody(-1))
	if fm1.Stats().Requests != n1 {
		t.Fatal("the old upstream still gets requests after the reload")
	}
}

func TestIntegrationAdminSwitchUnderLoad(t *testing.T) {
	t.Setenv(adminapi.TokenEnv, "tok")
	fm1, up1 := fake(t, func(o *fakemodel.Options) { o.TokenDelay = 10 * time.Millisecond })
	fm2, up2 := fake(t, nil)
	_, sick := fake(t, func(o *fakemodel.Options) { o.HealthFail = true })
	g := runGateway(t, testConfig(up1), Options{})
	c := &adminapi.Client{BaseURL: g.admin, Token: "tok"}
	stop := make(chan struct{})
	ok, failed, wait := load(t, g.url, 8, uniqueBody, stop)
	time.Sleep(200 * time.Millisecond)
	ctx := context.Background()
	if _, err := c.ReplaceTargets(ctx, "default", adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: sick}}, HealthTimeout: units.Duration(300 * time.Millisecond)}); err == nil {
		t.Fatal("a switch to an unhealthy target was accepted")
	}
	p, err := c.ReplaceTargets(ctx, "default", adminapi.ReplaceTargets{Targets: []adminapi.Target{{URL: up2}}, Drain: true, DrainTimeout: units.Duration(10 * time.Second)})
	if err != nil || len(p.Targets) != 1 || p.Targets[0].URL != up2 {
		t.Fatalf("switch: %+v %v", p, err)
	}
	if fm1.Stats().Inflight != 0 {
		t.Fatalf("the switch returned with %d requests still on the old target", fm1.Stats().Inflight)
	}
	n1 := fm1.Stats().Requests
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wait()
	if failed.Load() != 0 || fm1.Stats().Requests != n1 || fm2.Stats().Requests == 0 {
		t.Fatalf("switch under load: %d failed of %d; old got %d after the switch; new got %d", failed.Load(), ok.Load(), fm1.Stats().Requests-n1, fm2.Stats().Requests)
	}
	st, err := c.Stats(ctx, "default", time.Minute)
	if err != nil || st.Requests == 0 {
		t.Fatalf("stats after the switch: %+v %v", st, err)
	}
}

func TestIntegrationOverloadFast503BoundedMemory(t *testing.T) {
	_, up := fake(t, func(o *fakemodel.Options) { o.FirstTokenDelay = 3 * time.Second })
	cfg := testConfig(up)
	cfg.Pools[0].MaxInflight = 20
	cfg.Pools[0].Queue.Size = 20
	cfg.Pools[0].Queue.Timeout = units.Duration(200 * time.Millisecond)
	g := runGateway(t, cfg, Options{})
	tr := &http.Transport{MaxIdleConnsPerHost: 1000}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	var fast, slow, other atomic.Int64
	var mu sync.Mutex
	var fastTimes []time.Duration
	var base, peak runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		for other.Load()+fast.Load()+slow.Load() < 1000 {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.HeapInuse {
				peak = m
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	for i := range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := client.Post(g.url+"/v1/chat/completions", "application/json", strings.NewReader(uniqueBody(i)))
			if err != nil {
				other.Add(1)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			d := time.Since(start)
			switch {
			case resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "":
				fast.Add(1)
				mu.Lock()
				fastTimes = append(fastTimes, d)
				mu.Unlock()
			case resp.StatusCode == 200:
				slow.Add(1)
			default:
				other.Add(1)
			}
		}()
	}
	wg.Wait()
	<-sampling
	// Clients and gateway share this process: 1000 client goroutines and connections included.
	if grew := int64(peak.HeapInuse) - int64(base.HeapInuse); grew > 128<<20 {
		t.Fatalf("heap grew by %d MiB under overload", grew>>20)
	}
	t.Logf("heap in use grew by %.1f MiB at the peak of 1000 concurrent requests", float64(int64(peak.HeapInuse)-int64(base.HeapInuse))/(1<<20))
	// 20 slots held 3s each: 20 answers, 40 on a slow machine where the burst outlasts a round.
	if slow.Load() < 20 || slow.Load() > 60 || fast.Load() != 1000-slow.Load() || other.Load() != 0 {
		t.Fatalf("1000 requests against 20 slots: %d answered, %d fast 503s, %d other", slow.Load(), fast.Load(), other.Load())
	}
	// Client-side times include dialing 1000 connections at once on a busy
	// machine; the gateway's own histogram says how fast it answered.
	slices.Sort(fastTimes)
	t.Logf("503 latency seen by the clients: median %v, p90 %v", fastTimes[len(fastTimes)/2], fastTimes[len(fastTimes)*9/10])
	resp, err := http.Get(g.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var under float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, `ai_api_request_duration_seconds_bucket{endpoint="/v1/chat/completions",le="1"}`) {
			under, _ = strconv.ParseFloat(strings.Fields(line)[1], 64)
		}
	}
	if int64(under) < fast.Load()-20 { // the 20 that waited in the queue took 200ms and more
		t.Fatalf("only %v requests were answered within 1s by the gateway; %d were 503s", under, fast.Load())
	}
}
