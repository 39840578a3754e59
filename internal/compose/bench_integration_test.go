package compose

import (
	"testing"
	"time"

	"github.com/aideploy/aideploy/internal/rollout"
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
