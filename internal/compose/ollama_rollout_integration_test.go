package compose

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/gateway/adminapi"
	"github.com/aideploy/aideploy/internal/render"
	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/testutil/loadslot"
	"github.com/aideploy/aideploy/internal/testutil/ollamatest"
	"github.com/aideploy/aideploy/internal/units"
	"github.com/compose-spec/compose-go/v2/types"
)

// ollamaAnswer is one completion of the load as the client saw it; the
// prompt's token count tells the version (v2's model has a system prompt).
type ollamaAnswer struct {
	start, end time.Time
	stream     bool
	status     int
	promptToks int
	err        string
}

// askOllama sends one chat completion for the tiny model through the gateway.
// Every request has the same prompt, so that its token count is the version's;
// a seed of its own keeps any cache from folding requests into one.
func askOllama(c *http.Client, base string, seed int, stream bool) (a ollamaAnswer) {
	req := map[string]any{"model": ollamatest.Model, "max_tokens": 1, "stream": stream, "seed": seed,
		"messages": []map[string]string{{"role": "user", "content": "hello there"}}}
	if stream {
		req["stream_options"] = map[string]bool{"include_usage": true}
	}
	body, _ := json.Marshal(req)
	a = ollamaAnswer{start: time.Now(), stream: stream}
	defer func() { a.end = time.Now() }() // a is the result: this sets what the caller gets
	resp, err := c.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(string(body)))
	if err != nil {
		a.err = err.Error()
		return a
	}
	defer resp.Body.Close()
	a.status = resp.StatusCode
	var usage struct {
		Usage *struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		a.err = strings.TrimSpace(string(b))
		return a
	}
	if !stream {
		if err := json.NewDecoder(resp.Body).Decode(&usage); err != nil || usage.Usage == nil {
			a.err = fmt.Sprintf("no usage in the answer: %v", err)
			return a
		}
		a.promptToks = usage.Usage.PromptTokens
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	done := false
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		switch {
		case !ok:
			if strings.HasPrefix(sc.Text(), "event: error") {
				a.err = "stream error"
			}
		case data == "[DONE]":
			done = true
		default:
			if json.Unmarshal([]byte(data), &usage) == nil && usage.Usage != nil {
				a.promptToks = usage.Usage.PromptTokens
			}
		}
	}
	if !done && a.err == "" {
		a.err = "stream cut before [DONE]"
	}
	if a.promptToks == 0 && a.err == "" {
		a.err = "no usage chunk in the stream"
	}
	return a
}

// ollamaLoad sends completions at rate per second, half of them streams,
// until stopped; every answer is kept.
func ollamaLoad(t *testing.T, addr string, rate int) (stop func() []ollamaAnswer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	var mu sync.Mutex
	var answers []ollamaAnswer
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		defer tick.Stop()
		for i := 0; i < 3*60*rate; i++ { // bounded: at most three minutes of load
			select {
			case <-ctx.Done():
				wg.Wait()
				return
			case <-tick.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := askOllama(client, "http://"+addr, i, i%2 == 0)
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}()
	var once sync.Once
	stop = func() []ollamaAnswer {
		once.Do(func() {
			cancel()
			<-done
		})
		mu.Lock()
		defer mu.Unlock()
		out := append([]ollamaAnswer(nil), answers...)
		sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
		return out
	}
	t.Cleanup(func() { stop() })
	return stop
}

// ollamaPresetFile is the aideploy.yaml that `aideploy init --server ollama
// --model aideploy-tiny --gpus 0 --replicas 2 --name NAME` writes (two
// replicas of each version are what this machine's two cores can run
// side by side), built as init builds it
// (a configuration for the server, the flags' fields set, Derive, the
// commented template) and read back as every command reads it. The flags
// init leaves at their defaults (concurrency, context length, the gateway
// section, which init leaves out) keep the preset's values.
func ollamaPresetFile(t *testing.T, name string) (*config.Config, string) {
	t.Helper()
	cfg := config.New(config.ServerOllama)
	cfg.Name = name
	cfg.Model.Name = ollamatest.Model
	cfg.Resources.GPUs = 0 // no GPU here; the tiny model runs on the CPU
	cfg.Replicas = 2
	cfg.Derive(nil)
	data, err := render.ConfigFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	written, err := config.Parse(config.DefaultFile, data)
	if err != nil {
		t.Fatalf("the rendered aideploy.yaml does not load: %v", err)
	}
	if len(written.Gateway.Pools) != 0 {
		t.Fatalf("the preset's file names pools %+v: gateway serve --upstream would not build the preset's pool", written.Gateway.Pools)
	}
	return written, string(data)
}

// TestIntegrationDockerOllamaRolloutInComposeLayout rolls the real engine
// (Ollama with the tiny model) from v1 to v2 under more than 50 completions a
// second, laid out as compose.yaml has it: the gateway is the aideploy image
// in a container on the project network, started as compose.yaml starts it
// (gateway serve --config aideploy.yaml --upstream SERVICE:PORT) with the
// aideploy.yaml the Ollama preset renders, unchanged: its pool, limit, queue
// and health check are the ones an operator gets. The rollout puts each
// replica in the pool by container name. No request may fail, and the
// answering version changes once, v1 to v2, never back.
func TestIntegrationDockerOllamaRolloutInComposeLayout(t *testing.T) {
	t.Parallel()
	loadslot.Take(t)
	c := dockerClient(t)
	const project = "aidlayout"
	v1 := ollamatest.Image(t, c, "aideploy-test-ollama:layout-v1")
	v2 := ollamatest.ImageWith(t, c, "aideploy-test-ollama:layout-v2",
		ollamatest.ImageOptions{System: "You are version two of this model, rolled out under load by aideploy."})
	gwImage := gatewayImage(t, c, "aideploy-test-gateway:layout")

	removeNetworkAtEnd(t, c, project+"_default")
	p := testPlatform(t, c, func(o *Options) {
		o.Project = project
		o.GatewayInNetwork = true
		o.Port = ollamatest.ImagePort
	})
	cfg, file := ollamaPresetFile(t, p.opts.Service)
	if cfg.Port != ollamatest.ImagePort {
		t.Fatalf("the preset's port %d is not the test image's %d", cfg.Port, ollamatest.ImagePort)
	}
	// The replicas get the preset's environment (OLLAMA_NUM_PARALLEL from
	// model.concurrency, the context length, the listen address, the model
	// store) and arguments, as `aideploy rollout` gives them.
	p.opts.Spec.Command = types.ShellCommand(cfg.Args)
	p.opts.Spec.Environment = types.MappingWithEquals{}
	for _, e := range cfg.ServerEnv() {
		v := e.Value
		p.opts.Spec.Environment[e.Name] = &v
	}
	// The preset's rollout settings (health path, warm-up with the model's
	// name), with shorter waits where only the test's length is at stake:
	// the health gate's polling, the startup budget (a failure fails sooner),
	// the watch window, how long the old replicas linger and drain. None of
	// them decides whether a request is answered.
	ro := cfg.Rollout
	ro.HealthCheck.Interval = p.opts.Rollout.HealthCheck.Interval
	ro.StartupBudget = units.Duration(time.Minute)
	ro.ScaleDownDelay = units.Duration(time.Second)
	ro.DrainTimeout = units.Duration(30 * time.Second)
	ro.Watch.Window = units.Duration(3 * time.Second)
	p.opts.Rollout = ro
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := p.ensureNetworks(ctx); err != nil {
		t.Fatal(err)
	}
	addr, admin := composeGateway(t, c, gwImage, project+"_default", project+"-"+p.opts.Service+"-gateway", file,
		fmt.Sprintf("http://%s:%d", p.opts.Service, cfg.Port))
	p.opts.Gateway = admin

	runner := &rollout.Runner{Platform: p, Config: p.opts.Rollout, Holder: rollout.Holder{Owner: "test", Host: "test", PID: 1},
		Observe: func(ev rollout.Event) {
			t.Logf("%s %-8s %-7s %s %s", ev.Time.Format("15:04:05.000"), ev.Step, ev.Kind, ev.Elapsed.Round(time.Millisecond), ev.Message)
		}}
	if _, err := runner.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: cfg.Replicas}); err != nil {
		t.Fatalf("first deploy: %v", err)
	}
	pool, err := admin.Pool(ctx, p.opts.Pool)
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range pool.Targets {
		if !strings.HasPrefix(tg.URL, "http://"+project+"-"+p.opts.Service+"-") {
			t.Errorf("pool target %s: want a replica container's name on the project network", tg.URL)
		}
	}
	if len(pool.Targets) != cfg.Replicas {
		t.Errorf("pool targets %+v: want each of the %d replicas as a target of its own", pool.Targets, cfg.Replicas)
	}
	probe := &http.Client{Timeout: time.Minute}
	first := askOllama(probe, "http://"+addr, -1, false)
	if first.err != "" || first.status != 200 {
		t.Fatalf("v1 through the gateway: %d %s", first.status, first.err)
	}

	const rate = 60
	stop := ollamaLoad(t, addr, rate)
	stopWatch := watchPool(t, admin, p.opts.Pool)
	time.Sleep(2 * time.Second) // load before the rollout, so that v1 answers some of it
	if _, err := runner.Run(ctx, rollout.Request{Op: rollout.OpRollout, Image: v2}); err != nil {
		t.Fatalf("rollout to v2: %v", err)
	}
	time.Sleep(2 * time.Second) // load after the rollout, so that v2 answers some of it
	as := stop()
	peak := stopWatch()
	last := askOllama(probe, "http://"+addr, -2, false)
	if last.err != "" || last.status != 200 {
		t.Fatalf("v2 through the gateway: %d %s", last.status, last.err)
	}
	if first.promptToks == last.promptToks {
		t.Fatalf("v1 and v2 both count %d prompt tokens: the test cannot tell them apart", first.promptToks)
	}
	version := map[int]string{first.promptToks: "v1", last.promptToks: "v2"}

	var bad []ollamaAnswer
	var v1End time.Time // the latest end of a v1 answer
	var firstV2End time.Time
	counts := map[string]int{}
	back := 0
	for _, a := range as {
		if a.status != 200 || a.err != "" {
			bad = append(bad, a)
			continue
		}
		v := version[a.promptToks]
		counts[v]++
		switch v {
		case "v1":
			// A v1 answer sent after a v2 answer came back: the switch went back.
			if !firstV2End.IsZero() && a.start.After(firstV2End) {
				back++
			}
			v1End = a.end
		case "v2":
			if firstV2End.IsZero() || a.end.Before(firstV2End) {
				firstV2End = a.end
			}
		default:
			t.Errorf("an answer counted %d prompt tokens: neither v1 (%d) nor v2 (%d)", a.promptToks, first.promptToks, last.promptToks)
		}
	}
	secs := as[len(as)-1].start.Sub(as[0].start).Seconds()
	t.Logf("%d completions in %.1fs (%.0f/s): v1 %d, v2 %d, failed %d; last v1 answer ended %s",
		len(as), secs, float64(len(as))/secs, counts["v1"], counts["v2"], len(bad), v1End.Format("15:04:05.000"))
	t.Logf("the pool at its peak: %s", peak)
	if len(bad) > 0 {
		t.Errorf("%d of %d requests failed (%s), first: %+v; the gateway's answers without a model: %s; by second since the load began: %s",
			len(bad), len(as), failureKinds(bad), bad[0], degradedCounts(t, admin), timeline(as))
	}
	if rate := float64(len(as)) / secs; rate < 50 {
		t.Errorf("the load ran at %.0f completions/s; the acceptance asks for at least 50", rate)
	}
	if counts["v1"] == 0 || counts["v2"] == 0 {
		t.Errorf("answers by version %v: want both, v1 before the switch and v2 after", counts)
	}
	if back > 0 {
		t.Errorf("%d v1 answer(s) to requests sent after v2 had answered: the version changed back", back)
	}
}

// failureKinds sorts failed answers by status and by how long they took: a
// 503 within 100 ms is a full queue (or no target), one after about the queue
// timeout a request that waited for a slot in vain.
func failureKinds(bad []ollamaAnswer) string {
	kinds := map[string]int{}
	for _, a := range bad {
		took := a.end.Sub(a.start)
		k := fmt.Sprintf("%d", a.status)
		switch {
		case a.status == 0:
			k = "no answer"
		case took < 100*time.Millisecond:
			k += " fast"
		default:
			k += fmt.Sprintf(" after %.1fs", took.Seconds())
		}
		kinds[k]++
	}
	keys := make([]string, 0, len(kinds))
	for k := range kinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s: %d; ", k, kinds[k])
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// degradedCounts reads ai_gateway_degraded_total{reason} from the gateway's
// /metrics: why it answered without a model (saturated: the queue was full
// or timed out; unavailable: no usable target).
func degradedCounts(t *testing.T, admin *adminapi.Client) string {
	t.Helper()
	resp, err := http.Get(admin.BaseURL + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "ai_gateway_degraded_total") {
			out = append(out, sc.Text())
		}
	}
	return strings.Join(out, ", ")
}

// watchPool polls the pool through the admin API while the load runs and
// returns, when stopped, the most requests it saw queued and in flight and
// the fewest healthy targets: where a failed request was turned away.
func watchPool(t *testing.T, admin *adminapi.Client, pool string) (stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan string, 1)
	go func() {
		var maxQueued, maxInflight int64
		minHealthy := -1
		limits := map[int64]bool{}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				done <- fmt.Sprintf("queued %d, in flight %d, healthy targets at least %d, limits %v", maxQueued, maxInflight, minHealthy, limits)
				return
			case <-tick.C:
			}
			p, err := admin.Pool(ctx, pool)
			if err != nil {
				continue
			}
			maxQueued = max(maxQueued, p.Queued)
			var inflight int64
			healthy := 0
			for _, tg := range p.Targets {
				inflight += tg.Inflight
				limits[tg.Limit] = true
				if tg.Healthy && !tg.Draining {
					healthy++
				}
			}
			maxInflight = max(maxInflight, inflight)
			if minHealthy < 0 || healthy < minHealthy {
				minHealthy = healthy
			}
		}
	}()
	var once sync.Once
	var res string
	stop = func() string {
		once.Do(func() {
			cancel()
			res = <-done
		})
		return res
	}
	t.Cleanup(func() { stop() })
	return stop
}

// timeline counts the answers by the second they were sent in, since the
// first: "ok/failed" each, so that failures show whether they came at the
// switch or all along.
func timeline(as []ollamaAnswer) string {
	var ok, failed []int
	for _, a := range as {
		i := int(a.start.Sub(as[0].start).Seconds())
		for len(ok) <= i {
			ok, failed = append(ok, 0), append(failed, 0)
		}
		if a.status == 200 && a.err == "" {
			ok[i]++
		} else {
			failed[i]++
		}
	}
	parts := make([]string, len(ok))
	for i := range ok {
		parts[i] = fmt.Sprintf("%d/%d", ok[i], failed[i])
	}
	return strings.Join(parts, " ")
}
