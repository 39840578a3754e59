package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// limits polls the gateway's /metrics every second for its per-target limits
// and queue depth, so that a figure off target can be explained.
type limits struct {
	quit chan struct{}
	done chan []string
}

func pollLimits(metricsURL string, start time.Time) *limits {
	l := &limits{quit: make(chan struct{}), done: make(chan []string, 1)}
	go func() {
		var lines []string
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-l.quit:
				l.done <- lines
				return
			case <-tick.C:
			}
			lines = append(lines, fmt.Sprintf("%3.0fs %s", time.Since(start).Seconds(), scrape(metricsURL)))
		}
	}()
	return l
}

func (l *limits) stop() []string {
	close(l.quit)
	return <-l.done
}

// scrape returns the limit and in-flight series of each target and the queue.
func scrape(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var parts []string
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 4<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"ai_gateway_upstream_limit", "ai_gateway_upstream_inflight", "ai_gateway_upstream_queue_depth"} {
			if strings.HasPrefix(line, name+"{") {
				f := strings.Fields(line)
				parts = append(parts, strings.TrimPrefix(name, "ai_gateway_upstream_")+"="+f[len(f)-1])
			}
		}
	}
	return strings.Join(parts, " ")
}

// phases prints the 200s' latency in each part of the schedule.
func phases(w io.Writer, s schedule, name string, recs []record) {
	type phase struct {
		name     string
		from, to time.Duration
	}
	ps := []phase{{"ramp and hold", 0, s.slowAt}, {"3x slower", s.slowAt, s.fastAt}, {"normal again", s.fastAt, s.killAt}, {"one replica", s.killAt, s.length + s.clientTimeout}}
	for _, p := range ps {
		var lat []time.Duration
		for _, r := range recs {
			if r.status == 200 && r.sent >= p.from && r.sent < p.to {
				lat = append(lat, r.done-r.sent)
			}
		}
		if len(lat) == 0 {
			fmt.Fprintf(w, "%-8s %-14s no 200s\n", name, p.name)
			continue
		}
		slices.Sort(lat)
		fmt.Fprintf(w, "%-8s %-14s %5d 200s  p50 %6s  p99 %6s  max %6s\n", name, p.name, len(lat),
			lat[len(lat)/2].Round(time.Millisecond), lat[len(lat)*99/100].Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
}
