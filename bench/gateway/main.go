// Command gateway benchmarks the aideploy gateway against the upstream alone and
// nginx proxy_pass on loopback, with the fake model as upstream, and prints a table.
//
//	go run ./bench/gateway [-duration 5s] [-rounds 5] [-concurrency 64] [-streams 5000]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	duration    time.Duration
	concurrency int
	streams     int
	nginx       string
	rounds      int
}

func run(ctx context.Context) (err error) {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long each throughput run lasts")
	flag.IntVar(&o.concurrency, "concurrency", 64, "concurrent connections of the load generator")
	flag.IntVar(&o.streams, "streams", 5000, "open streams for the RSS measurement")
	flag.StringVar(&o.nginx, "nginx", "/usr/sbin/nginx", "nginx binary (Debian: apt-get install -y nginx-light)")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds of every scenario; each figure is the median")
	flag.Parse()

	dir, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	defer func() {
		if err != nil {
			printLogTails(dir) // before the directory goes: what the servers said
		}
	}()
	fmt.Fprintln(os.Stderr, "building the fake model and aideploy...")
	for _, b := range []struct{ out, pkg string }{{"fakemodel", "./cmd/fakemodel"}, {"aideploy", "./cmd/aideploy"}, {"minproxy", "./bench/minproxy"}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, b.out), b.pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("building %s (run from the repository root): %w", b.pkg, err)
		}
	}
	var procs procs
	defer procs.stopAll()

	// The upstream: fast answers for throughput.
	upPort := procs.port()
	up := "127.0.0.1:" + upPort
	fmPID, err := procs.startPID(ctx, dir, "fakemodel", filepath.Join(dir, "fakemodel"), "-listen", up, "-tokens", "16")
	if err != nil {
		return err
	}
	ngPort := procs.port()
	ngPID, err := startNginx(ctx, &procs, o.nginx, dir, ngPort, up)
	if err != nil {
		return err
	}
	gwPort, gwAdmin := procs.port(), procs.port()
	gwPID, err := procs.startGateway(ctx, dir, "gateway", gwPort, gwAdmin, up)
	if err != nil {
		return err
	}
	// A second gateway on the same defaults that starts the measured rounds
	// with an empty L1: its misses pay the first touch of the L1's memory.
	freshPort := procs.port()
	freshAdmin := procs.port()
	freshPID, err := procs.startGateway(ctx, dir, "gateway-fresh", freshPort, freshAdmin, up)
	if err != nil {
		return err
	}
	// The same gateway without its cache: not a target, it shows how much
	// of the gap is the cache's own work and heap.
	offPort := procs.port()
	offConf, err := cacheOffConfig(dir)
	if err != nil {
		return err
	}
	offAdmin := procs.port()
	offPID, err := procs.startGateway(ctx, dir, "gateway-nocache", offPort, offAdmin, up, "--config", offConf)
	if err != nil {
		return err
	}
	// The minimal httputil.ReverseProxy (bench/minproxy): how much of the
	// gateway's cost is proxying on net/http rather than its own work.
	minPort := procs.port()
	minPID, err := procs.startPID(ctx, dir, "minproxy", filepath.Join(dir, "minproxy"), "-listen", "127.0.0.1:"+minPort, "-upstream", up)
	if err != nil {
		return err
	}
	for _, a := range []string{up, "127.0.0.1:" + ngPort, "127.0.0.1:" + gwPort, "127.0.0.1:" + freshPort, "127.0.0.1:" + offPort, "127.0.0.1:" + minPort} {
		if err := waitHTTP(ctx, "http://"+a+"/health"); err != nil {
			return err
		}
	}
	for _, a := range []string{gwAdmin, freshAdmin, offAdmin} {
		if err := waitHTTP(ctx, "http://127.0.0.1:"+a+"/healthz"); err != nil {
			return fmt.Errorf("a gateway's admin listener: %w", err)
		}
	}

	// Every run numbers its requests from 1, so the counter alone would repeat
	// the warm-up's questions and turn misses into hits: one counter for all runs.
	var questions atomic.Int64
	unique := func(int64) string {
		return `{"model":"fake-model","messages":[{"role":"user","content":"question ` + strconv.FormatInt(questions.Add(1), 10) + `"}],"max_tokens":16,"temperature":0}`
	}
	same := func(int64) string {
		return `{"model":"fake-model","messages":[{"role":"user","content":"the same question"}],"max_tokens":16,"temperature":0}`
	}
	// A gateway that has served a while has a full L1: every miss then
	// overwrites memory the cache already holds. Until then each miss also
	// touches fresh pages, a one-time cost that a first-touch page fault makes
	// dear on virtual machines. The target rows measure the steady state.
	if err := fillL1(ctx, "127.0.0.1:"+gwPort, "127.0.0.1:"+gwAdmin, unique, o.concurrency); err != nil {
		return err
	}
	// The machine's speed drifts (shared hosts), so the scenarios run
	// interleaved for several rounds and each figure is the median of its
	// rounds: a slow patch then touches every scenario alike.
	const (
		sUpstream = iota
		sNginx
		sMiss
		sHit
		sOff
		sFresh
		sMin
	)
	scenarios := []struct {
		name, addr string
		body       func(int64) string
		pid        int // the process whose CPU time is counted
	}{
		{"a upstream direct", up, unique, fmPID},
		{"b nginx proxy_pass", "127.0.0.1:" + ngPort, unique, ngPID},
		{"c gateway, cache miss (L1 full)", "127.0.0.1:" + gwPort, unique, gwPID},
		{"d gateway, cache hit", "127.0.0.1:" + gwPort, same, gwPID},
		{"c' gateway, cache off", "127.0.0.1:" + offPort, unique, offPID},
		{"c0 gateway, cache miss, L1 filling", "127.0.0.1:" + freshPort, unique, freshPID},
		{"m minimal httputil.ReverseProxy", "127.0.0.1:" + minPort, unique, minPID},
	}
	samples := make([][]result, len(scenarios))
	for round := range o.rounds {
		for i, s := range scenarios {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s for %s...\n", round+1, o.rounds, s.name, o.duration)
			// Warm the connections and the cache first.
			if _, err := loadRun(ctx, s.name, "http://"+s.addr+"/v1/chat/completions", s.body, o.concurrency, time.Second, 0); err != nil {
				return err
			}
			r, err := withCPU(s.pid, fmPID, o.duration, func() (result, error) {
				return loadRun(ctx, s.name, "http://"+s.addr+"/v1/chat/completions", s.body, o.concurrency, o.duration, 0)
			})
			if err != nil {
				return err
			}
			samples[i] = append(samples[i], r)
		}
	}
	rows := make([]result, len(scenarios))
	for i := range scenarios {
		rows[i] = median(samples[i])
	}
	// Added p99 at half of nginx's peak rate (the target) and, to show how
	// much of it is the cores running out, at a quarter; interleaved too.
	half := rows[sNginx].rps / 2
	// nginx runs twice in a row at half its peak (b', then b): the gap between
	// the two (no proxy differs) is how far the method itself moves an added p99.
	const (
		pNginxBefore = iota
		pNginx
		pGateway
		pNginxQuarter
		pGatewayQuarter
		pOff
		pOffQuarter
		pMin
		pMinQuarter
	)
	pacedRuns := []struct {
		name, addr string
		rate       float64
		pid        int
	}{
		{"b' nginx at half its peak, a run before b", "127.0.0.1:" + ngPort, half, ngPID},
		{"b nginx at half its peak", "127.0.0.1:" + ngPort, half, ngPID},
		{"c gateway (miss) at nginx's half peak", "127.0.0.1:" + gwPort, half, gwPID},
		{"b nginx at a quarter of its peak", "127.0.0.1:" + ngPort, half / 2, ngPID},
		{"c gateway (miss) at nginx's quarter peak", "127.0.0.1:" + gwPort, half / 2, gwPID},
		{"c' gateway (cache off) at nginx's half peak", "127.0.0.1:" + offPort, half, offPID},
		{"c' gateway (cache off) at nginx's quarter peak", "127.0.0.1:" + offPort, half / 2, offPID},
		{"m minimal httputil.ReverseProxy at nginx's half peak", "127.0.0.1:" + minPort, half, minPID},
		{"m minimal httputil.ReverseProxy at nginx's quarter peak", "127.0.0.1:" + minPort, half / 2, minPID},
	}
	// The machine settles for a second after the throughput runs before the
	// first paced run counts.
	if _, err := loadRun(ctx, "settle", "http://127.0.0.1:"+ngPort+"/v1/chat/completions", unique, o.concurrency, time.Second, half); err != nil {
		return err
	}
	pacedSamples := make([][]result, len(pacedRuns))
	for round := range o.rounds {
		for i, s := range pacedRuns {
			fmt.Fprintf(os.Stderr, "round %d/%d: %s (%.0f req/s)...\n", round+1, o.rounds, s.name, s.rate)
			r, err := withCPU(s.pid, fmPID, o.duration, func() (result, error) {
				return loadRun(ctx, s.name, "http://"+s.addr+"/v1/chat/completions", unique, o.concurrency, o.duration, s.rate)
			})
			if err != nil {
				return err
			}
			pacedSamples[i] = append(pacedSamples[i], r)
		}
	}
	paced := make([]result, len(pacedRuns))
	for i := range pacedRuns {
		paced[i] = median(pacedSamples[i])
	}
	ttfbDirect, ttfbGW, err := streamTTFB(ctx, up, "127.0.0.1:"+gwPort, 300)
	if err != nil {
		return err
	}
	procs.stopAll()

	rss, openN, err := streamsRSS(ctx, dir, o.streams)
	if err != nil {
		return err
	}

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "scenario\treq/s\tp50 ms\tp99 ms\terrors\tserver CPU us/req\t\n")
	for _, r := range append(rows, paced...) {
		cpu := "-"
		if r.cpuPerReq > 0 {
			cpu = fmt.Sprintf("%.0f", float64(r.cpuPerReq)/float64(time.Microsecond))
		}
		fmt.Fprintf(w, "%s\t%.0f\t%.2f\t%.2f\t%d\t%s\t\n", r.name, r.rps, ms(r.p50), ms(r.p99), r.errors, cpu)
	}
	w.Flush()
	// Ratios and added p99 pair each round's runs, which ran minutes apart
	// at most, and take the median over rounds: the machine's drift between
	// rounds then cancels instead of landing on one side of a ratio.
	rps := func(i int) func(int) float64 { return func(r int) float64 { return samples[i][r].rps } }
	p99 := func(i int) func(int) float64 { return func(r int) float64 { return ms(pacedSamples[i][r].p99) } }
	ratio := func(a, b func(int) float64) pairs {
		return paired(o.rounds, func(r int) float64 { return a(r) / b(r) })
	}
	added := func(a, b func(int) float64) pairs {
		return paired(o.rounds, func(r int) float64 { return a(r) - b(r) })
	}
	cb, db, c0b, coffb := ratio(rps(sMiss), rps(sNginx)), ratio(rps(sHit), rps(sNginx)), ratio(rps(sFresh), rps(sNginx)), ratio(rps(sOff), rps(sNginx))
	addHalf, addQuarter := added(p99(pGateway), p99(pNginx)), added(p99(pGatewayQuarter), p99(pNginxQuarter))
	offHalf, offQuarter := added(p99(pOff), p99(pNginx)), added(p99(pOffQuarter), p99(pNginxQuarter))
	noise := added(p99(pNginx), p99(pNginxBefore))
	fmt.Printf("\nrows: medians of %d interleaved rounds of %s each; ratios and added p99: medians of the rounds' pairs\n", o.rounds, o.duration)
	// CPU per request is the measure that holds still on shared cores:
	// throughput and tails move with the neighbours, the work per request
	// does not. The gateway's features on a miss (JSON, key, cache write,
	// limits, metrics) must cost less than half of what proxying itself does.
	cpu := func(i int) func(int) float64 {
		return func(r int) float64 { return float64(samples[i][r].cpuPerReq) }
	}
	cpuMiss, cpuHit := ratio(cpu(sMiss), cpu(sMin)), ratio(cpu(sHit), cpu(sMin))
	fmt.Printf("CPU per request, gateway miss (L1 full) / minimal Go proxy: %.2f (target <= 1.50); by round %s\n", cpuMiss.median(), cpuMiss.format("%.2f"))
	fmt.Printf("CPU per request, gateway hit / minimal Go proxy: %.2f (no target); by round %s\n", cpuHit.median(), cpuHit.format("%.2f"))
	fmt.Printf("ratio d/b (gateway hit / nginx miss throughput):  %.2f (target >= 1.50); by round %s\n", db.median(), db.format("%.2f"))
	fmt.Printf("ratio c/b (gateway miss, L1 full / nginx throughput): %.2f (no target); by round %s\n", cb.median(), cb.format("%.2f"))
	fmt.Printf("p99 added at %.0f req/s (gateway - nginx; no target, read with the spread below): %.2f ms; by round %s\n", half, addHalf.median(), addHalf.format("%+.2f"))
	fmt.Printf("p99 added at %.0f req/s (nginx - nginx one run earlier; the method's own spread, no target): %.2f ms; by round %s\n",
		half, noise.median(), noise.format("%+.2f"))
	fmt.Printf("p99 added at %.0f req/s: %.2f ms; by round %s\n", half/2, addQuarter.median(), addQuarter.format("%+.2f"))
	// On a machine whose cores the load generator and the fake model share,
	// the added p99 follows the proxy's CPU per request: print it beside.
	fmt.Printf("server CPU per request at %.0f req/s: nginx %s, gateway %s, gateway with the cache off %s, minimal httputil.ReverseProxy %s\n",
		half, usPerReq(paced[pNginx]), usPerReq(paced[pGateway]), usPerReq(paced[pOff]), usPerReq(paced[pMin]))
	// Two cores shared by the load generator, the fake model and the proxy:
	// how close each paced run came to using them all, and what the proxy's
	// neighbours spent, so that an added p99 can be read as queueing.
	fmt.Printf("cores busy at %.0f req/s: nginx %s, gateway %s, gateway with the cache off %s, minimal httputil.ReverseProxy %s; per request in the nginx run, load generator %s, fake model %s\n",
		half, busyOf(paced[pNginx]), busyOf(paced[pGateway]), busyOf(paced[pOff]), busyOf(paced[pMin]), us(paced[pNginx].loadPerReq), us(paced[pNginx].upPerReq))
	minHalf, minQuarter := added(p99(pMin), p99(pNginx)), added(p99(pMinQuarter), p99(pNginxQuarter))
	fmt.Printf("minimal httputil.ReverseProxy (proxying on net/http without the gateway's work): m/b %.2f, p99 added %.2f ms at %.0f req/s (by round %s), %.2f ms at %.0f req/s (by round %s)\n",
		ratio(rps(sMin), rps(sNginx)).median(), minHalf.median(), half, minHalf.format("%+.2f"), minQuarter.median(), half/2, minQuarter.format("%+.2f"))
	fmt.Printf("with the cache off (no target; the share of the gap that is the cache's): c'/b %.2f, p99 added %.2f ms at %.0f req/s, %.2f ms at %.0f req/s\n",
		coffb.median(), offHalf.median(), half, offQuarter.median(), half/2)
	fmt.Printf("a fresh gateway (no target; its misses touch the L1's memory first until it is full): c0/b %.2f in round 1; by round %s\n", c0b[0], c0b.format("%.2f"))
	fmt.Printf("stream first byte: direct p50 %.3f ms, via gateway p50 %.3f ms, added %.3f ms (target <= 1 ms)\n",
		ms(ttfbDirect), ms(ttfbGW), ms(ttfbGW-ttfbDirect))
	fmt.Printf("gateway RSS with %d open streams (per-replica limit lifted): %.1f MiB (target <= 512 MiB)\n", openN, float64(rss)/(1<<20))
	return nil
}

// pairs are one figure per round.
type pairs []float64

func paired(rounds int, f func(round int) float64) pairs {
	p := make(pairs, rounds)
	for r := range p {
		p[r] = f(r)
	}
	return p
}

func (p pairs) median() float64 {
	s := slices.Clone(p)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func (p pairs) format(verb string) string {
	out := make([]string, len(p))
	for i, v := range p {
		out[i] = fmt.Sprintf(verb, v)
	}
	return strings.Join(out, " ")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the run with the median throughput, its p99 and CPU per
// request replaced by the medians of the runs' own (p99 is a tail: one slow
// patch moves it far).
func median(runs []result) result {
	byRPS := slices.Clone(runs)
	sort.Slice(byRPS, func(i, j int) bool { return byRPS[i].rps < byRPS[j].rps })
	m := byRPS[len(byRPS)/2]
	mid := func(f func(result) float64) float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = f(r)
		}
		return pairs(v).median()
	}
	m.p99 = time.Duration(mid(func(r result) float64 { return float64(r.p99) }))
	m.cpuPerReq = time.Duration(mid(func(r result) float64 { return float64(r.cpuPerReq) }))
	m.upPerReq = time.Duration(mid(func(r result) float64 { return float64(r.upPerReq) }))
	m.loadPerReq = time.Duration(mid(func(r result) float64 { return float64(r.loadPerReq) }))
	m.busy = mid(func(r result) float64 { return r.busy })
	m.steal = mid(func(r result) float64 { return r.steal })
	return m
}

// withCPU runs one load run of duration d and fills in the CPU time per
// request that pid (with its children) spent meanwhile, the upstream's (upPID)
// and this process's, the load generator, and how busy the machine's cores were.
func withCPU(pid, upPID int, d time.Duration, run func() (result, error)) (result, error) {
	before, upBefore, selfBefore, statBefore := cpuTicks(pid), cpuTicks(upPID), selfCPU(), readCPUStat()
	r, err := run()
	selfAfter, statAfter := selfCPU(), readCPUStat() // before the /proc scans below, which are not the load's
	if err != nil {
		return r, err
	}
	n := r.rps * d.Seconds()
	perReq := func(ticks int64) time.Duration {
		return time.Duration(float64(ticks) * float64(10*time.Millisecond) / n)
	}
	r.cpuPerReq = perReq(cpuTicks(pid) - before)
	if upPID != pid {
		r.upPerReq = perReq(cpuTicks(upPID) - upBefore)
	}
	r.loadPerReq = time.Duration(float64(selfAfter-selfBefore) / n)
	r.busy, r.steal = statAfter.since(statBefore)
	return r, nil
}

// selfCPU is the user and system time this process (the load generator) has spent.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuStat is the first line of /proc/stat: clock ticks of all cores by state.
type cpuStat struct{ busy, steal, total int64 }

func readCPUStat() cpuStat {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuStat{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	var st cpuStat
	for i := 1; i < len(f) && i <= 8; i++ {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		st.total += v
		switch i {
		case 4, 5: // idle, iowait
		case 8:
			st.steal += v
		default:
			st.busy += v
		}
	}
	return st
}

// since returns the share of all cores' time that was busy, and stolen by
// the hypervisor, between earlier and s.
func (s cpuStat) since(earlier cpuStat) (busy, steal float64) {
	t := float64(s.total - earlier.total)
	if t <= 0 {
		return 0, 0
	}
	return float64(s.busy-earlier.busy) / t, float64(s.steal-earlier.steal) / t
}

func usPerReq(r result) string { return us(r.cpuPerReq) }

func us(d time.Duration) string { return fmt.Sprintf("%.0f us", float64(d)/float64(time.Microsecond)) }

// busyOf shows a run's busy share of all cores, and the hypervisor's steal when there was any.
func busyOf(r result) string {
	if r.steal >= 0.005 {
		return fmt.Sprintf("%.0f%% (%.0f%% stolen)", 100*r.busy, 100*r.steal)
	}
	return fmt.Sprintf("%.0f%%", 100*r.busy)
}

type result struct {
	name        string
	rps         float64
	cpuPerReq   time.Duration // CPU time of the serving process (and its children) per request
	upPerReq    time.Duration // the fake model's, when it is not the serving process
	loadPerReq  time.Duration // the load generator's (this process)
	busy, steal float64       // share of all cores' time busy, and stolen by the hypervisor
	p50, p99    time.Duration
	errors      int64
}

// loadRun sends POSTs from conc workers for d; rate > 0 paces the total to rate per second.
// Each worker keeps one connection, opened before the clock starts, as wrk
// does: a run then times requests, not the TCP handshakes of its first ones.
func loadRun(ctx context.Context, name, url string, body func(int64) string, conc int, d time.Duration, rate float64) (result, error) {
	var seq, errs atomic.Int64
	lat := make([][]time.Duration, conc)
	var start, deadline time.Time
	var slot atomic.Int64
	var opened, wg sync.WaitGroup
	begin := make(chan struct{})
	post := func(client *http.Client) (time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Post(url, "application/json", strings.NewReader(body(seq.Add(1))))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return time.Since(t0), nil
	}
	for w := range conc {
		wg.Add(1)
		opened.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			_, _ = post(client) // opens the connection; not timed
			opened.Done()
			<-begin
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if rate > 0 {
					// Open loop: request i is due at start + i/rate, whoever sends it.
					due := start.Add(time.Duration(float64(slot.Add(1)) / rate * float64(time.Second)))
					if due.After(deadline) {
						return
					}
					time.Sleep(time.Until(due))
				}
				l, err := post(client)
				if err != nil {
					errs.Add(1)
					continue
				}
				lat[w] = append(lat[w], l)
			}
		}()
	}
	opened.Wait()
	start = time.Now()
	deadline = start.Add(d)
	close(begin)
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return result{}, fmt.Errorf("%s: no request succeeded (%d errors)", name, errs.Load())
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	return result{name: name, rps: float64(len(all)) / elapsed.Seconds(), p50: all[len(all)/2], p99: all[len(all)*99/100], errors: errs.Load()}, nil
}

// fillL1 sends unique questions through the gateway at addr until its L1
// evicts, which it does only when full, and reports how long that took.
func fillL1(ctx context.Context, addr, admin string, body func(int64) string, conc int) error {
	start := time.Now()
	for {
		ev, n, err := l1Counts(admin)
		if err != nil {
			return err
		}
		if ev > 0 {
			fmt.Fprintf(os.Stderr, "the gateway's L1 is full: %.0f answers after %s\n", n, time.Since(start).Round(time.Second))
			return nil
		}
		if time.Since(start) > 5*time.Minute {
			return fmt.Errorf("the gateway's L1 did not fill in %s (%.0f answers held)", time.Since(start).Round(time.Second), n)
		}
		fmt.Fprintf(os.Stderr, "filling the gateway's L1: %.0f answers...\n", n)
		if _, err := loadRun(ctx, "fill", "http://"+addr+"/v1/chat/completions", body, conc, 3*time.Second, 0); err != nil {
			return err
		}
	}
}

// l1Counts reads the L1's evictions and entries from the admin metrics.
func l1Counts(admin string) (evictions, entries float64, err error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0, fmt.Errorf("the gateway's /metrics: %w", err)
	}
	ev, n := fams["ai_gateway_cache_l1_evictions_total"], fams["ai_gateway_cache_l1_entries"]
	if len(ev.GetMetric()) == 0 || len(n.GetMetric()) == 0 {
		return 0, 0, errors.New("the gateway's /metrics has no L1 counters")
	}
	return ev.GetMetric()[0].GetCounter().GetValue(), n.GetMetric()[0].GetGauge().GetValue(), nil
}

// streamTTFB measures the p50 time to the first byte of a stream, direct and through the gateway.
func streamTTFB(ctx context.Context, direct, gw string, n int) (time.Duration, time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	measure := func(addr string, i int) (time.Duration, error) {
		body := `{"model":"fake-model","stream":true,"max_tokens":4,"messages":[{"role":"user","content":"s` + strconv.Itoa(i) + `"}]}`
		t0 := time.Now()
		resp, err := client.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		if _, err := br.ReadByte(); err != nil {
			return 0, err
		}
		d := time.Since(t0)
		_, _ = io.Copy(io.Discard, br)
		return d, nil
	}
	var a, b []time.Duration
	for i := range n {
		if ctx.Err() != nil {
			return 0, 0, ctx.Err()
		}
		da, err := measure(direct, i)
		if err != nil {
			return 0, 0, err
		}
		db, err := measure(gw, i)
		if err != nil {
			return 0, 0, err
		}
		a, b = append(a, da), append(b, db)
	}
	med := func(s []time.Duration) time.Duration {
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	return med(a), med(b), nil
}

// streamsRSS opens n slow streams through a fresh gateway and reads its RSS.
func streamsRSS(ctx context.Context, dir string, n int) (int64, int, error) {
	var procs procs
	defer procs.stopAll()
	up := "127.0.0.1:" + procs.port()
	if err := procs.start(ctx, dir, "fakemodel-slow", filepath.Join(dir, "fakemodel"), "-listen", up, "-tokens", "60", "-token-delay", "500ms"); err != nil {
		return 0, 0, err
	}
	gwPort := procs.port()
	// One fake model holds all n streams, where a real fleet would spread
	// them over many replicas: the per-replica limit, which on defaults
	// would shed all but a few as fast 503s, is lifted to measure what n
	// open streams cost the gateway.
	conf, err := unboundedConfig(dir)
	if err != nil {
		return 0, 0, err
	}
	pid, err := procs.startGateway(ctx, dir, "gateway-streams", gwPort, procs.port(), up, "--config", conf)
	if err != nil {
		return 0, 0, err
	}
	if err := waitHTTP(ctx, "http://127.0.0.1:"+gwPort+"/health"); err != nil {
		return 0, 0, err
	}
	fmt.Fprintf(os.Stderr, "opening %d streams through the gateway...\n", n)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: n, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var open atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"model":"fake-model","stream":true,"messages":[{"role":"user","content":"s` + strconv.Itoa(i) + `"}]}`
			req, _ := http.NewRequestWithContext(sctx, http.MethodPost, "http://127.0.0.1:"+gwPort+"/v1/chat/completions", strings.NewReader(body))
			req.Header.Set("Cache-Control", "no-store")
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			if _, err := br.ReadString('\n'); err == nil {
				open.Add(1)
			}
			_, _ = io.Copy(io.Discard, br)
		}()
		if i%500 == 499 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for open.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	rss, err := rssOf(pid)
	cancel()
	wg.Wait()
	return rss, int(open.Load()), err
}

// cpuTicks is the user and system time, in clock ticks (1/100 s), of pid and its children.
func cpuTicks(pid int) int64 {
	var total int64
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may hold spaces.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if n != pid && ppid != pid {
			continue
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		total += ut + st
	}
	return total
}

func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

type procs struct {
	list  []*exec.Cmd
	ports map[string]bool // handed out by port
}

// port returns a free loopback port that p has not handed out before. A
// port is free when asked for, but the server it is for binds it later: two
// asks in a row may get the same number from the kernel, and the second
// server would then fail to start while a health check reached the first.
func (p *procs) port() string {
	if p.ports == nil {
		p.ports = map[string]bool{}
	}
	for {
		port := freePort()
		if !p.ports[port] {
			p.ports[port] = true
			return port
		}
	}
}

func (p *procs) start(ctx context.Context, dir, name, bin string, args ...string) error {
	_, err := p.startPID(ctx, dir, name, bin, args...)
	return err
}

func (p *procs) startPID(ctx context.Context, dir, name, bin string, args ...string) (int, error) {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return 0, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("starting %s: %w", name, err)
	}
	p.list = append(p.list, cmd)
	return cmd.Process.Pid, nil
}

// startGateway runs a gateway on its embedded defaults (a config file that
// does not exist), or with the flags in extra, which come later and win.
func (p *procs) startGateway(ctx context.Context, dir, name, port, admin, up string, extra ...string) (int, error) {
	args := append([]string{"gateway", "serve", "--config", filepath.Join(dir, "none.yaml"),
		"--listen", "127.0.0.1:" + port, "--admin-listen", "127.0.0.1:" + admin, "--upstream", "http://" + up}, extra...)
	err := p.start(ctx, dir, name, filepath.Join(dir, "aideploy"), args...)
	if err != nil {
		return 0, err
	}
	return p.list[len(p.list)-1].Process.Pid, nil
}

func (p *procs) stopAll() {
	for _, c := range p.list {
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	p.list = nil
}

// cacheOffConfig writes a configuration whose gateway has no cache.
// unboundedConfig writes a configuration whose default pool has no
// per-replica limit and no queue.
func unboundedConfig(dir string) (string, error) {
	path := filepath.Join(dir, "unbounded.yaml")
	conf := "name: bench\nimage: bench/model:1\ngateway:\n  pools:\n    - name: default\n      targets:\n        - url: http://127.0.0.1:9\n      maxInflight: -1\n      queue:\n        size: -1\n"
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

func cacheOffConfig(dir string) (string, error) {
	path := filepath.Join(dir, "nocache.yaml")
	conf := "name: bench\nimage: bench/model:1\ngateway:\n  cache:\n    enabled: false\n"
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

func startNginx(ctx context.Context, p *procs, bin, dir, port, up string) (int, error) {
	if _, err := os.Stat(bin); err != nil {
		return 0, fmt.Errorf("nginx is missing at %s; install it with: apt-get install -y nginx-light", bin)
	}
	conf := fmt.Sprintf(`worker_processes auto;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream model { server %[2]s; keepalive 256; }
  server {
    listen 127.0.0.1:%[3]s;
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, up, port)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return 0, err
	}
	return p.startPID(ctx, dir, "nginx", bin, "-e", filepath.Join(dir, "nginx-error.log"), "-p", dir, "-c", path)
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s did not answer: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// printLogTails prints the last lines of every server's log in dir.
func printLogTails(dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil || len(b) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		fmt.Fprintf(os.Stderr, "--- %s (last lines)\n%s\n", filepath.Base(l), strings.Join(lines[max(0, len(lines)-5):], "\n"))
	}
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}
