package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/fakemodel"
)

// Identical streams that arrive while one is running follow it live: one
// upstream call, and each follower sees tokens long before the stream ends.
func TestStreamFollowersGetTokensLive(t *testing.T) {
	fm, up := fake(t, func(o *fakemodel.Options) { o.Tokens = 8; o.TokenDelay = 60 * time.Millisecond })
	_, gw := startGateway(t, testConfig(up), true)
	body := `{"model":"m","stream":true,"temperature":0,"max_tokens":8,"messages":[{"role":"user","content":"tell"}]}`

	type result struct {
		first, total time.Duration
		level, text  string
	}
	run := func() result {
		start := time.Now()
		resp, err := http.Post(gw+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Error(err)
			return result{}
		}
		defer resp.Body.Close()
		br := bufio.NewReader(resp.Body)
		var r result
		var all strings.Builder
		for {
			line, err := br.ReadString('\n')
			if r.first == 0 && strings.HasPrefix(line, "data: {") {
				r.first = time.Since(start)
			}
			all.WriteString(line)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Error(err)
				break
			}
		}
		r.total, r.level, r.text = time.Since(start), resp.Header.Get("X-Cache-Level"), all.String()
		return r
	}
	leader := make(chan result, 1)
	go func() { leader <- run() }()
	time.Sleep(100 * time.Millisecond) // the leader's stream is under way
	var wg sync.WaitGroup
	followers := make([]result, 5)
	for i := range followers {
		wg.Add(1)
		go func() { defer wg.Done(); followers[i] = run() }()
	}
	wg.Wait()
	l := <-leader
	if n := fm.Stats().Requests; n != 1 {
		t.Fatalf("%d upstream calls for 6 identical streams, want 1", n)
	}
	for i, f := range followers {
		if f.level != "flight" || f.text != l.text {
			t.Errorf("follower %d: level %q, stream equal to the leader's: %v\n%s", i, f.level, f.text == l.text, f.text)
		}
		if f.first > l.total/2 {
			t.Errorf("follower %d: first token after %v, the whole stream took %v: not live", i, f.first, l.total)
		}
		if strings.Contains(f.text, `"usage"`) {
			t.Errorf("follower %d got the usage chunk it did not ask for", i)
		}
	}
	t.Logf("leader stream %v; followers' first token after %v", l.total, followers[0].first)
}

// Identical stream requests to a model that answers with JSON errors each
// get the whole error, from their own call (follow declining a share that
// holds no stream is pinned by TestFollowDeclinesWhatItCannotShare: here the
// failing call may end before the others arrive).
func TestStreamFollowersFallBackWhenTheSharedCallFails(t *testing.T) {
	fm, up := fake(t, func(o *fakemodel.Options) { o.FailureRate = 1; o.FirstTokenDelay = 100 * time.Millisecond })
	cfg := testConfig(up)
	cfg.Pools[0].HealthCheck.Path = "" // keep the failing target in the pool
	_, gw := startGateway(t, cfg, true)
	body := `{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}`
	var wg sync.WaitGroup
	codes := make([]int, 4)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * 10 * time.Millisecond)
			resp, _ := post(t, gw+"/v1/chat/completions", body)
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusInternalServerError {
			t.Errorf("request %d: %d, want the model's own 500", i, c)
		}
	}
	if n := fm.Stats().Requests; n < 2 {
		t.Errorf("%d upstream calls: followers did not make their own after the shared one failed", n)
	}
}

// follow hands a request back, untouched, when the shared call failed
// before answering or answered with something other than a stream.
func TestFollowDeclinesWhatItCannotShare(t *testing.T) {
	g, err := New(testConfig("http://127.0.0.1:1"), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]func() *share{
		"error answer": func() *share {
			s := &share{}
			s.setHead(500, http.Header{"Content-Type": {"application/json"}}, false)
			return s
		},
		"failed before answering": func() *share { s := &share{}; s.finish(false); return s },
		"cut before the first byte": func() *share {
			s := &share{}
			s.setHead(200, http.Header{"Content-Type": {"text/event-stream"}}, true)
			s.finish(false)
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			x := &exchange{r: httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)}
			x.w.reset(rec)
			if g.follow(x, s()) {
				t.Fatal("follow served it")
			}
			if x.w.wroteHeader || rec.Body.Len() > 0 {
				t.Errorf("follow wrote %d %q before declining", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestFollowerOfACutStreamSeesTheError(t *testing.T) {
	g, err := New(testConfig("http://127.0.0.1:1"), Deps{})
	if err != nil {
		t.Fatal(err)
	}
	s := &share{}
	s.setHead(200, http.Header{"Content-Type": {"text/event-stream"}}, true)
	s.add([]byte("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"))
	s.finish(false)
	rec := httptest.NewRecorder()
	x := &exchange{r: httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)}
	x.w.reset(rec)
	if !g.follow(x, s) {
		t.Fatal("follow declined a stream that had begun")
	}
	if body := rec.Body.String(); !strings.Contains(body, `"content":"a"`) || !strings.Contains(body, "event: error") || x.complete {
		t.Errorf("a follower of a cut stream got %q (complete %v); want the bytes so far and an error event", body, x.complete)
	}
}

// waitFollowers waits until n requests follow the one live share of g.
func waitFollowers(t *testing.T, srv *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		count := 0
		srv.Gateway().live.Range(func(_, v any) bool {
			s := v.(*share)
			s.mu.Lock()
			count += s.followers
			s.mu.Unlock()
			return true
		})
		if count >= n {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("fewer than %d followers joined the shared stream", n)
}

// The leader's client leaving does not cut the followers: the shared call
// goes on while they read, and stops once the last of them is gone.
func TestStreamSurvivesItsLeadersClient(t *testing.T) {
	fm, up := fake(t, func(o *fakemodel.Options) { o.Tokens = 10; o.TokenDelay = 40 * time.Millisecond })
	srv, gw := startGateway(t, testConfig(up), true)
	body := `{"model":"m","stream":true,"temperature":0,"max_tokens":10,"messages":[{"role":"user","content":"go"}]}`

	ctx, leave := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil { // the leader's first token
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() { _, b := post(t, gw+"/v1/chat/completions", body); got <- b }()
	waitFollowers(t, srv, 1)
	leave()
	resp.Body.Close()
	b := <-got
	if strings.Contains(b, "event: error") || !strings.HasSuffix(b, "data: [DONE]\n\n") || strings.Count(b, `"content"`) != 10 {
		t.Fatalf("the follower's stream after the leader left: %q", b)
	}
	if s := fm.Stats(); s.Requests != 1 || s.Cancelled != 0 {
		t.Fatalf("upstream: %d calls, %d cancelled; want 1 call that ran to its end", s.Requests, s.Cancelled)
	}
	// The answer, finished for the follower, is in the cache.
	if resp, _ := post(t, gw+"/v1/chat/completions", body); resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("after the shared stream ended: X-Cache %q, want HIT", resp.Header.Get("X-Cache"))
	}
}

func TestSharedStreamStopsWhenEveryReaderLeft(t *testing.T) {
	fm, up := fake(t, func(o *fakemodel.Options) { o.Tokens = 200; o.TokenDelay = 20 * time.Millisecond })
	srv, gw := startGateway(t, testConfig(up), true)
	body := `{"model":"m","stream":true,"temperature":0,"max_tokens":200,"messages":[{"role":"user","content":"go"}]}`
	open := func() (context.CancelFunc, *http.Response) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/v1/chat/completions", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
			t.Fatal(err)
		}
		return cancel, resp
	}
	leaveLeader, r1 := open()
	leaveFollower, r2 := open()
	waitFollowers(t, srv, 1)
	leaveLeader()
	r1.Body.Close()
	time.Sleep(100 * time.Millisecond)
	if fm.Stats().Cancelled != 0 {
		t.Fatal("the shared call stopped while a follower still read it")
	}
	leaveFollower()
	r2.Body.Close()
	deadline := time.Now().Add(2 * time.Second)
	for fm.Stats().Cancelled == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := fm.Stats(); s.Requests != 1 || s.Cancelled != 1 {
		t.Fatalf("upstream: %d calls, %d cancelled; want the one shared call cancelled once nobody read it", s.Requests, s.Cancelled)
	}
}
