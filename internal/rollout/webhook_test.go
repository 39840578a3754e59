package rollout

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestWebhookRetriesAndNeverBlocks: the receiver fails twice, then takes
// every event in order; Observe returns at once while the receiver is stuck.
func TestWebhookRetriesAndNeverBlocks(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []WebhookPost
	calls := 0
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		var p WebhookPost
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			t.Errorf("decoding a post: %v", err)
		}
		got = append(got, p)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL, Service: "llm", Backoff: time.Millisecond}
	returned := make(chan struct{})
	go func() {
		w.Observe(Event{Step: StepCanary, Kind: EventInfo, Message: "canary step 1/3 (5%)"})
		w.Observe(Event{Step: StepCanary, Kind: EventProgress, Message: "no verdict: not posted"})
		w.Observe(Event{Step: StepCanary, Kind: EventDone, Message: "3 step(s) passed"})
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Observe blocked on a receiver that does not answer")
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dropped, failed := w.Close(ctx)
	mu.Lock()
	defer mu.Unlock()
	if dropped != 0 || failed != 0 {
		t.Errorf("dropped %d, failed %d; want none", dropped, failed)
	}
	if calls != 4 || len(got) != 2 {
		t.Fatalf("%d calls, %d delivered; want 4 calls (2 refused) and 2 events", calls, len(got))
	}
	if got[0].Service != "llm" || got[0].Message != "canary step 1/3 (5%)" || got[1].Kind != EventDone {
		t.Errorf("posts = %+v", got)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	var logged []string
	w := &Webhook{URL: srv.URL, Attempts: 3, Backoff: time.Millisecond, Logf: func(f string, a ...any) { logged = append(logged, f) }}
	w.Observe(Event{Step: StepCanary, Kind: EventInfo})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, failed := w.Close(ctx); failed != 1 || len(logged) != 1 {
		t.Errorf("failed %d, logged %d; want 1 and 1", failed, len(logged))
	}
}
