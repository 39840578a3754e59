package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The schedule: the rate climbs from 10 to 400 req/s over the first half and
// holds; the model is 3x slower from slowAt to fastAt; one replica dies at
// killAt. Times are offsets from the start of the replay.
type schedule struct {
	length, rampFor        time.Duration
	from, to               float64
	slowAt, fastAt, killAt time.Duration
	slots                  int
	service                time.Duration
	clientTimeout          time.Duration
}

func defaultSchedule() schedule {
	return schedule{
		length: 60 * time.Second, rampFor: 30 * time.Second, from: 10, to: 400,
		slowAt: 25 * time.Second, fastAt: 40 * time.Second, killAt: 45 * time.Second,
		slots: 8, service: 200 * time.Millisecond, clientTimeout: 10 * time.Second,
	}
}

// rate is the offered load at offset t.
func (s schedule) rate(t time.Duration) float64 {
	if t >= s.rampFor {
		return s.to
	}
	return s.from + (s.to-s.from)*float64(t)/float64(s.rampFor)
}

// sendTimes are the offsets of every request: the n-th is sent when the
// integral of the rate reaches n.
func (s schedule) sendTimes() []time.Duration {
	var out []time.Duration
	step := time.Millisecond
	acc := 0.0
	for t := time.Duration(0); t < s.length; t += step {
		acc += s.rate(t) * step.Seconds()
		for acc >= 1 {
			out = append(out, t)
			acc--
		}
	}
	return out
}

// modelLatency is the stand-in's own time for a request served at offset t.
func (s schedule) modelLatency(t time.Duration) time.Duration {
	if t >= s.slowAt && t < s.fastAt {
		return 3 * s.service
	}
	return s.service
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "standin" {
		fs := flag.NewFlagSet("standin", flag.ExitOnError)
		listen := fs.String("listen", "127.0.0.1:0", "address")
		slots := fs.Int("slots", 8, "requests worked on at once")
		service := fs.Duration("service", 200*time.Millisecond, "time per request")
		_ = fs.Parse(os.Args[2:])
		if err := standin(*listen, *slots, *service); err != nil {
			fmt.Fprintln(os.Stderr, "standin:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ok, err := run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "peak:", err)
		os.Exit(1)
	}
	if !ok {
		fmt.Fprintln(os.Stderr, "peak: the gateway on its defaults missed a target (see FAIL above)")
		os.Exit(1)
	}
}

func run(ctx context.Context) (bool, error) {
	nginx := flag.String("nginx", "/usr/sbin/nginx", "nginx binary (Debian: apt-get install -y nginx-light)")
	prebuilt := flag.String("aideploy", "", "an aideploy binary to use instead of building ./cmd/aideploy")
	flag.Parse()
	s := defaultSchedule()
	if _, err := os.Stat(*nginx); err != nil {
		return false, fmt.Errorf("nginx is missing at %s; install it with: apt-get install -y nginx-light", *nginx)
	}
	dir, err := os.MkdirTemp("", "peak-bench-")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	self, err := os.Executable()
	if err != nil {
		return false, err
	}
	bin := *prebuilt
	if bin == "" {
		bin = filepath.Join(dir, "aideploy")
		fmt.Fprintln(os.Stderr, "building aideploy...")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/aideploy")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return false, fmt.Errorf("building ./cmd/aideploy (run from the repository root): %w", err)
		}
	}
	var ps procs
	defer ps.stopAll()
	defer func() {
		if err != nil {
			ps.printLogTails(dir)
		}
	}()
	// Two stand-in replicas for each proxy, so that a kill or a queue on one
	// side cannot touch the other.
	models := map[string][2]*exec.Cmd{}
	addrs := map[string][2]string{}
	for _, side := range []string{"gateway", "nginx"} {
		var cmds [2]*exec.Cmd
		var as [2]string
		for i := range 2 {
			as[i] = "127.0.0.1:" + freePort()
			cmds[i], err = ps.start(dir, fmt.Sprintf("%s-model-%d", side, i), self, "standin", "-listen", as[i],
				"-slots", strconv.Itoa(s.slots), "-service", s.service.String())
			if err != nil {
				return false, err
			}
		}
		models[side], addrs[side] = cmds, as
	}
	gwAddr, adminAddr, ngAddr := "127.0.0.1:"+freePort(), "127.0.0.1:"+freePort(), "127.0.0.1:"+freePort()
	gw, err := ps.start(dir, "gateway", bin, "gateway", "serve",
		"--config", filepath.Join(dir, "none.yaml"), "--listen", gwAddr, "--admin-listen", adminAddr,
		"--upstream", "http://"+addrs["gateway"][0], "--upstream", "http://"+addrs["gateway"][1])
	if err != nil {
		return false, err
	}
	ng, err := startNginx(&ps, *nginx, dir, ngAddr, addrs["nginx"])
	if err != nil {
		return false, err
	}
	for _, u := range []string{"http://" + adminAddr + "/healthz", "http://" + ngAddr + "/health"} {
		if err := waitHTTP(ctx, u); err != nil {
			return false, err
		}
	}
	for _, side := range []string{"gateway", "nginx"} {
		for _, a := range addrs[side] {
			if err := waitHTTP(ctx, "http://"+a+"/health"); err != nil {
				return false, err
			}
		}
	}
	idle := map[string]int64{"gateway": rssTree(gw.Process.Pid), "nginx": rssTree(ng.Process.Pid)}

	fmt.Fprintf(os.Stderr, "replaying %s of traffic through both at once...\n", s.length)
	sampler := startRSS(map[string]int{"gateway": gw.Process.Pid, "nginx": ng.Process.Pid})
	events := func(at time.Duration, f func()) *time.Timer { return time.AfterFunc(at, f) }
	start := time.Now()
	timeline := pollLimits("http://"+adminAddr+"/metrics", start)
	var timers []*time.Timer
	for _, side := range []string{"gateway", "nginx"} {
		ms := models[side]
		timers = append(timers,
			events(s.slowAt, func() { signalAll(ms, syscall.SIGUSR1) }),
			events(s.fastAt, func() { signalAll(ms, syscall.SIGUSR2) }),
			events(s.killAt, func() { _ = ms[1].Process.Kill() }))
	}
	results := map[string]chan []record{"gateway": make(chan []record, 1), "nginx": make(chan []record, 1)}
	times := s.sendTimes()
	go func() { results["gateway"] <- replay(ctx, "http://"+gwAddr, start, times, s.clientTimeout) }()
	go func() { results["nginx"] <- replay(ctx, "http://"+ngAddr, start, times, s.clientTimeout) }()
	recs := map[string][]record{"gateway": <-results["gateway"], "nginx": <-results["nginx"]}
	for _, t := range timers {
		t.Stop()
	}
	peak := sampler.stop()
	lines := timeline.stop()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	reps := map[string]report{}
	for side, r := range recs {
		reps[side] = summarise(s, r, idle[side], peak[side])
	}
	ok := printReport(os.Stdout, s, reps["gateway"], reps["nginx"])
	fmt.Println()
	phases(os.Stdout, s, "gateway", recs["gateway"])
	phases(os.Stdout, s, "nginx", recs["nginx"])
	fmt.Println("\nthe gateway's limits, requests in flight and queue, every second:")
	for i, l := range lines {
		if i%3 == 0 || !ok {
			fmt.Println(l)
		}
	}
	return ok, nil
}

func signalAll(cmds [2]*exec.Cmd, sig os.Signal) {
	for _, c := range cmds {
		_ = c.Process.Signal(sig)
	}
}

func startNginx(ps *procs, bin, dir, listen string, ups [2]string) (*exec.Cmd, error) {
	// nginx's defaults but for what it needs to run unprivileged in dir, and
	// keep-alive to the upstreams as any production config has.
	conf := fmt.Sprintf(`worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream model { server %[2]s; server %[3]s; keepalive 256; }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://model;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, dir, ups[0], ups[1], listen)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	return ps.start(dir, "nginx", bin, "-e", filepath.Join(dir, "nginx-error.log"), "-p", dir, "-c", path)
}

func waitHTTP(ctx context.Context, url string) error {
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer: %v", url, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
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

// procs owns the processes the bench started.
type procs struct{ list []*exec.Cmd }

func (p *procs) start(dir, name, bin string, args ...string) (*exec.Cmd, error) {
	cmd := exec.Command(bin, args...)
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p.list = append(p.list, cmd)
	return cmd, nil
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

func (p *procs) printLogTails(dir string) {
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
