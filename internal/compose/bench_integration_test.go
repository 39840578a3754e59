package compose

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
	"github.com/aideploy/aideploy/internal/units"
)

// BenchmarkIntegrationDockerSwitchUnderLoad rolls v1 → v2 under about 100
// requests/s through the gateway and reports the time from "new colour
// healthy" to "all traffic on it" and the requests that failed meanwhile.
// Run: go test ./internal/compose -run '^$' -bench SwitchUnderLoad -benchtime 1x
func BenchmarkIntegrationDockerSwitchUnderLoad(b *testing.B) {
	c := dockerClient(b)
	v1 := fakeModelImage(b, c, "aideploy-test-model:bench-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKEN_DELAY": "20ms"})
	v2 := fakeModelImage(b, c, "aideploy-test-model:bench-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKEN_DELAY": "20ms"})
	var switchMs, failedTotal, requests float64
	for i := 0; i < b.N; i++ {
		e := newEnv(b, nil)
		if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 2}); err != nil {
			b.Fatalf("first deploy: %v", err)
		}
		l := startLoad(b, e.addr, 100)
		time.Sleep(time.Second)
		res, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
		if err != nil {
			b.Fatalf("rollout: %v", err)
		}
		time.Sleep(500 * time.Millisecond)
		as := l.finish()
		switchMs += float64(res.HealthyToSwitched.Milliseconds())
		failedTotal += float64(len(failed(as)))
		requests += float64(len(as))
	}
	b.ReportMetric(switchMs/float64(b.N), "healthy-to-switched-ms")
	b.ReportMetric(failedTotal/float64(b.N), "failed-requests")
	b.ReportMetric(requests/float64(b.N), "requests")
}

// BenchmarkIntegrationDockerCanaryAbort holds a canary of v2 at its first
// step (5%) under about 100 chat requests/s through the gateway, then leaves
// an operator's abort, and reports how long until every request went back to
// v1: as the rollout reported it (command left → "all requests back" event)
// and as clients saw it (command left → the last request answered by v2
// started), with the requests that failed. Not asserted: a figure to watch.
// Run: go test ./internal/compose -run '^$' -bench CanaryAbort -benchtime 1x
func BenchmarkIntegrationDockerCanaryAbort(b *testing.B) {
	c := dockerClient(b)
	v1 := fakeModelImage(b, c, "aideploy-test-model:bench-ab-v1", map[string]string{"FAKEMODEL_VERSION": "v1", "FAKEMODEL_TOKENS": "8", "FAKEMODEL_TOKEN_DELAY": "5ms"})
	v2 := fakeModelImage(b, c, "aideploy-test-model:bench-ab-v2", map[string]string{"FAKEMODEL_VERSION": "v2", "FAKEMODEL_TOKENS": "8", "FAKEMODEL_TOKEN_DELAY": "5ms"})
	var reportedMs, clientMs, failedTotal, requests float64
	for i := 0; i < b.N; i++ {
		e := newEnv(b, func(c *rollout.Config) {
			c.Strategy = rollout.StrategyCanary
			// One long step: the canary holds at 5% until the abort.
			c.Canary.Steps = []rollout.CanaryStep{{Weight: 5, For: units.Duration(10 * time.Minute)}}
		})
		if _, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v1, Replicas: 3}); err != nil {
			b.Fatalf("first deploy: %v", err)
		}
		l := startChatLoad(b, e.addr, 100)
		done := make(chan error, 1)
		go func() {
			_, err := e.run(rollout.Request{Op: rollout.OpRollout, Image: v2})
			done <- err
		}()
		e.event("canary step 1/1 (5%): 5% of requests", 90*time.Second)
		// Wait for v2 to answer some requests, so the abort moves real traffic.
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(50 * time.Millisecond)
		for l.answeredBy("v2") < 10 {
			if time.Now().After(deadline) {
				b.Fatal("v2 answered fewer than 10 requests within 30s of its step")
			}
			<-tick.C
		}
		tick.Stop()
		host, _ := os.Hostname()
		sent := time.Now()
		if err := e.p.SendCommand(context.Background(), rollout.Command{Verb: rollout.VerbAbort, By: "bench@" + host, At: sent}); err != nil {
			b.Fatal(err)
		}
		back := e.event("all requests back on blue r1", 30*time.Second)
		if err := <-done; err == nil {
			b.Fatal("the rollout was not aborted")
		}
		// Requests sent for a while after the switch show that none reach v2.
		e.event("removed green r2", 30*time.Second)
		as := l.finish()
		var lastV2 time.Time
		for _, a := range as {
			if a.version == "v2" && a.start.After(lastV2) {
				lastV2 = a.start
			}
		}
		reportedMs += float64(back.Time.Sub(sent).Milliseconds())
		clientMs += float64(max(lastV2.Sub(sent), 0).Milliseconds())
		failedTotal += float64(len(failed(as)))
		requests += float64(len(as))
		b.Logf("abort: back on v1 %s after the command (reported), last request to v2 started %s after it; %d requests at %.0f/s, %d failed",
			back.Time.Sub(sent).Round(time.Millisecond), lastV2.Sub(sent).Round(time.Millisecond), len(as), loadRate(as), len(failed(as)))
	}
	b.ReportMetric(reportedMs/float64(b.N), "abort-reported-ms")
	b.ReportMetric(clientMs/float64(b.N), "abort-last-v2-request-ms")
	b.ReportMetric(failedTotal/float64(b.N), "failed-requests")
	b.ReportMetric(requests/float64(b.N), "requests")
}
