package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// Webhook posts every event it is given to a URL as JSON, from a goroutine of
// its own: a slow or failing receiver never holds a rollout up. Each post is
// retried with a doubling backoff; events beyond the queue are dropped and
// counted.
type Webhook struct {
	URL      string
	Service  string               // named in every post
	Client   *http.Client         // nil means a 5-second timeout
	Attempts int                  // tries per event; 0 means 5
	Backoff  time.Duration        // first wait between tries; 0 means 500ms
	Logf     func(string, ...any) // failures worth a line; nil drops them

	once    sync.Once
	queue   chan Event
	done    chan struct{}
	mu      sync.Mutex
	dropped int
	failed  int
}

// WebhookPost is the body of each post.
type WebhookPost struct {
	Service string `json:"service,omitempty"`
	Event
}

const webhookQueue = 256

func (w *Webhook) start() {
	w.once.Do(func() {
		w.queue, w.done = make(chan Event, webhookQueue), make(chan struct{})
		go w.loop()
	})
}

// Observe queues e for posting and returns at once. Progress events (a
// verdict every analysis interval) are not posted: steps are.
func (w *Webhook) Observe(e Event) {
	if e.Kind == EventProgress {
		return
	}
	w.start()
	select {
	case w.queue <- e:
	default:
		w.mu.Lock()
		w.dropped++
		w.mu.Unlock()
	}
}

// Close posts what is queued, waiting at most until ctx ends, and reports
// how many events were dropped or could not be delivered.
func (w *Webhook) Close(ctx context.Context) (dropped, failed int) {
	w.start()
	close(w.queue)
	select {
	case <-w.done:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.dropped + len(w.queue), w.failed
}

func (w *Webhook) loop() {
	defer close(w.done)
	for e := range w.queue {
		if err := w.post(e); err != nil {
			w.mu.Lock()
			w.failed++
			w.mu.Unlock()
			if w.Logf != nil {
				w.Logf("webhook %s: %v", w.URL, err)
			}
		}
	}
}

func (w *Webhook) post(e Event) error {
	body, err := json.Marshal(WebhookPost{Service: w.Service, Event: e})
	if err != nil {
		return err
	}
	hc := w.Client
	if hc == nil {
		hc = &http.Client{Timeout: 5 * time.Second}
	}
	attempts, backoff := w.Attempts, w.Backoff
	if attempts <= 0 {
		attempts = 5
	}
	if backoff <= 0 {
		backoff = 500 * time.Millisecond
	}
	var last error
	for i := range attempts {
		if i > 0 {
			time.Sleep(backoff) // its own goroutine: the rollout never waits on it
			backoff *= 2
		}
		req, err := http.NewRequest(http.MethodPost, w.URL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			last = err
			continue
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return nil
		}
		last = fmt.Errorf("answered %d", resp.StatusCode)
	}
	return fmt.Errorf("gave up after %d tries: %w", attempts, last)
}
