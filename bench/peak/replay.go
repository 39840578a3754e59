package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// record is what one request saw; offsets are from the start of the replay.
type record struct {
	sent, done time.Duration
	status     int
	timeout    bool // the client gave up: no answer within its timeout
	reset      bool // the connection failed or was cut without an answer
}

// replay sends a request at every offset in times, open-loop: a slow answer
// never delays the next request, as users do not wait for each other.
func replay(ctx context.Context, base string, start time.Time, times []time.Duration, timeout time.Duration) []record {
	tr := &http.Transport{MaxIdleConns: 0, MaxIdleConnsPerHost: 4096, IdleConnTimeout: 30 * time.Second,
		DialContext: (&net.Dialer{Timeout: timeout}).DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: timeout}
	out := make([]record, len(times))
	var wg sync.WaitGroup
	for i, at := range times {
		if d := time.Until(start.Add(at)); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				wg.Wait()
				return out[:i]
			case <-t.C:
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = one(client, base, start, i)
		}()
	}
	wg.Wait()
	return out
}

func one(client *http.Client, base string, start time.Time, i int) record {
	// Distinct prompts: the replay measures the model path, not the cache.
	body := `{"model":"peak","messages":[{"role":"user","content":"question ` + strconv.Itoa(i) + `"}],"max_tokens":1,"temperature":0}`
	r := record{sent: time.Since(start)}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		r.status = resp.StatusCode
	}
	r.done = time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.timeout = true
		} else {
			r.reset = true
		}
	}
	return r
}

// rssTree is the resident memory of pid and its children (nginx's workers).
func rssTree(pid int) int64 {
	total := rssOf(pid)
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	for _, f := range strings.Fields(string(b)) {
		if c, err := strconv.Atoi(f); err == nil {
			total += rssOf(c)
		}
	}
	return total
}

func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// rssSampler keeps the highest RSS of each process tree until stopped.
type rssSampler struct {
	quit chan struct{}
	done chan map[string]int64
}

func startRSS(pids map[string]int) *rssSampler {
	s := &rssSampler{quit: make(chan struct{}), done: make(chan map[string]int64, 1)}
	go func() {
		peak := map[string]int64{}
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			for name, pid := range pids {
				peak[name] = max(peak[name], rssTree(pid))
			}
			select {
			case <-s.quit:
				s.done <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() map[string]int64 {
	close(s.quit)
	return <-s.done
}
