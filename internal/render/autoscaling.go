package render

import (
	"fmt"
	"strconv"

	"github.com/aideploy/aideploy/internal/config"
)

type hpaData struct {
	Min, Max, CPU, Memory, RPS          int
	InFlight                            int
	BusyMetric                          string // the server's gauge of running requests
	UpWindow, UpPercent, UpPeriod       int64
	DownWindow, DownPercent, DownPeriod int64
}

// kedaData is the KEDA ScaledObject of autoscaling.engine keda: the HPA's
// bounds and behaviour, KEDA's cpu and memory triggers, and Prometheus
// triggers on the gateway's metrics.
type kedaData struct {
	hpaData
	Prometheus string // serverAddress of every Prometheus trigger
	Triggers   []promTrigger
}

// promTrigger is one trigger of KEDA's Prometheus scaler. With AverageValue
// the HPA KEDA owns divides the query's result by the replicas it targets;
// with Value it scales the replicas by result/threshold.
type promTrigger struct {
	Name       string
	Why        string // the comment above it
	Query      string
	Threshold  string
	MetricType string
}

// ttftWindow is the rate window of the time-to-first-token quantile: a few
// Prometheus scrapes (15s), short enough to follow a burst.
const ttftWindow = "2m"

func (d *renderData) setAutoscaling(cfg *config.Config) error {
	a := cfg.Autoscaling
	if !a.Enabled {
		return nil
	}
	h := hpaData{
		Min: a.MinReplicas, Max: a.MaxReplicas, CPU: a.CPUTarget, Memory: a.MemoryTarget, RPS: a.RequestsPerSecond,
		InFlight: a.RequestsInFlight, BusyMetric: d.Preset.BusyMetric,
		UpWindow: a.ScaleUp.StabilizationWindow.Seconds(), UpPercent: int64(a.ScaleUp.Percent), UpPeriod: a.ScaleUp.Period.Seconds(),
		DownWindow: a.ScaleDown.StabilizationWindow.Seconds(), DownPercent: int64(a.ScaleDown.Percent), DownPeriod: a.ScaleDown.Period.Seconds(),
	}
	if a.Engine != config.EngineKEDA {
		if h.CPU == 0 && h.Memory == 0 && h.RPS == 0 && h.InFlight == 0 {
			// The API server would fill in CPU 80%: never render an HPA without metrics.
			return fmt.Errorf("%w: autoscaling is enabled with no target; set autoscaling.cpuTarget, memoryTarget, requestsPerSecond or requestsInFlight, or disable autoscaling", ErrConfig)
		}
		d.HPA = &h
		return nil
	}
	k := &kedaData{hpaData: h, Prometheus: a.PrometheusURL}
	gw := fmt.Sprintf(`job=%q`, gatewayJob(d))
	if a.RequestsInFlight > 0 {
		k.Triggers = append(k.Triggers, promTrigger{
			Name:       "requests-in-flight",
			Why:        "Requests the gateway has in flight to the model, per replica: what a replica's batch holds.",
			Query:      fmt.Sprintf(`sum(ai_gateway_upstream_inflight{%s})`, gw),
			Threshold:  strconv.Itoa(a.RequestsInFlight),
			MetricType: "AverageValue",
		})
	}
	if a.QueueDepth > 0 {
		k.Triggers = append(k.Triggers, promTrigger{
			Name:       "queue-depth",
			Why:        "Requests waiting in the gateway for a free slot, per replica: every replica is full, or the adaptive limit holds requests back.",
			Query:      fmt.Sprintf(`sum(ai_gateway_upstream_queue_depth{%s})`, gw),
			Threshold:  strconv.Itoa(a.QueueDepth),
			MetricType: "AverageValue",
		})
	}
	if a.TimeToFirstToken > 0 {
		k.Triggers = append(k.Triggers, promTrigger{
			Name:       "time-to-first-token-p95",
			Why:        "p95 time to first token in seconds: replicas grow in proportion while it is above the threshold.",
			Query:      fmt.Sprintf(`histogram_quantile(0.95, sum by (le) (rate(ai_gateway_time_to_first_token_seconds_bucket{%s}[%s])))`, gw, ttftWindow),
			Threshold:  strconv.FormatFloat(a.TimeToFirstToken.D().Seconds(), 'f', -1, 64),
			MetricType: "Value",
		})
	}
	if a.RequestsPerSecond > 0 {
		k.Triggers = append(k.Triggers, promTrigger{
			Name:       "requests-per-second",
			Why:        "Requests per second the gateway answers, per replica.",
			Query:      fmt.Sprintf(`sum(rate(ai_api_requests_total{%s}[1m]))`, gw),
			Threshold:  strconv.Itoa(a.RequestsPerSecond),
			MetricType: "AverageValue",
		})
	}
	if len(k.Triggers) == 0 && k.CPU == 0 && k.Memory == 0 {
		return fmt.Errorf("%w: autoscaling is enabled with no target; set autoscaling.requestsInFlight, queueDepth or timeToFirstToken, or disable autoscaling", ErrConfig)
	}
	d.KEDA = k
	return nil
}
