package k8s_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// answer is one request of the load and how it ended.
type answer struct {
	client     int
	sent, done time.Time
	version    string // X-Model-Version of a 200
	failure    string // empty when it succeeded
}

// load sends requests at a steady rate, spread over clients that each keep
// one connection to one gateway pod and send one request at a time.
type load struct {
	mu      sync.Mutex
	answers []answer
	clients int
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

func startLoad(t *testing.T, urls []string, perSecond, clientsPerURL int) *load {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cancel: cancel, clients: len(urls) * clientsPerURL}
	t.Cleanup(l.stop)
	tokens := make(chan time.Time, l.clients)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				close(tokens)
				return
			case now := <-tick.C:
				select {
				case tokens <- now:
				case <-ctx.Done():
					close(tokens)
					return
				}
			}
		}
	}()
	for i := range l.clients {
		url := urls[i%len(urls)]
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer hc.CloseIdleConnections()
			for n := 0; ; n++ {
				if _, ok := <-tokens; !ok {
					return
				}
				a := answer{client: i, sent: time.Now()}
				body := fmt.Sprintf(`{"model":"fake-model","max_tokens":4,"messages":[{"role":"user","content":"client %d request %d"}]}`, i, n)
				resp, err := hc.Post(url, "application/json", strings.NewReader(body))
				switch {
				case err != nil:
					a.failure = err.Error()
				default:
					_, rerr := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					a.version = resp.Header.Get("X-Model-Version")
					if resp.StatusCode != http.StatusOK || rerr != nil {
						a.failure = fmt.Sprintf("%d %s (version %q, %v)", resp.StatusCode, http.StatusText(resp.StatusCode), a.version, rerr)
					}
				}
				a.done = time.Now()
				l.mu.Lock()
				l.answers = append(l.answers, a)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *load) stop() {
	l.once.Do(func() { l.cancel(); l.wg.Wait() })
}

// allSaw says whether every client's last successful answer came from version v.
func (l *load) allSaw(v string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := make([]string, l.clients)
	for _, a := range l.answers {
		if a.failure == "" {
			last[a.client] = a.version
		}
	}
	for _, s := range last {
		if s != v {
			return false
		}
	}
	return true
}

// lastVersions lists the versions of the clients' last answers.
func (l *load) lastVersions() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := make([]string, l.clients)
	for _, a := range l.answers {
		last[a.client] = a.version
	}
	seen := map[string]bool{}
	var out []string
	for _, v := range last {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

type tally struct {
	sent, failed int
	firstFailure string
}

// between counts the requests sent from a to b.
func (l *load) between(a, b time.Time) tally {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t tally
	for _, x := range l.answers {
		if x.sent.Before(a) || x.sent.After(b) {
			continue
		}
		t.sent++
		if x.failure != "" {
			if t.failed == 0 {
				t.firstFailure = x.failure
			}
			t.failed++
		}
	}
	return t
}

// versionOrder checks, per client, that the answers since since went from
// from to to once: no answer of another version, none of from after to.
func (l *load) versionOrder(from, to string, since time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var bad []string
	switchedAt := make([]time.Time, l.clients)
	for _, a := range l.answers {
		if a.sent.Before(since) || a.failure != "" {
			continue
		}
		switch {
		case a.version == to && switchedAt[a.client].IsZero():
			switchedAt[a.client] = a.done
		case a.version == from && !switchedAt[a.client].IsZero():
			bad = append(bad, fmt.Sprintf("client %d got %s at %s after %s at %s", a.client, from, a.done.Format("15:04:05.000"), to, switchedAt[a.client].Format("15:04:05.000")))
		case a.version != from && a.version != to:
			bad = append(bad, fmt.Sprintf("client %d got version %q", a.client, a.version))
		}
	}
	for c, at := range switchedAt {
		if at.IsZero() {
			bad = append(bad, fmt.Sprintf("client %d never got %s", c, to))
		}
	}
	return bad
}

// versionsBetween counts the successful answers sent from a to b by version.
func (l *load) versionsBetween(a, b time.Time) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for _, x := range l.answers {
		if x.failure == "" && !x.sent.Before(a) && !x.sent.After(b) {
			out[x.version]++
		}
	}
	return out
}
