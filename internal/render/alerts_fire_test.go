package render

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
)

// alertSeries are synthetic samples, one a minute for 70 minutes in
// promqltest's series notation, that should make one alert fire (firing), and
// samples of a healthy service under which no alert fires. {gw} and {model}
// stand for the service's two jobs; {pod} for one of its pods.
var alertSeries = []struct {
	alert  string
	firing []string
}{
	{"AIDeployHighErrorRate", []string{
		`ai_api_requests_total{job="{gw}",status="500"} 0+10x70`,
		`ai_api_requests_total{job="{gw}",status="200"} 0+10x70`}},
	{"AIDeployHighP99Latency", []string{ // every request takes 2 to 5 minutes
		`ai_api_request_duration_seconds_bucket{job="{gw}",le="60"} 0+0x70`,
		`ai_api_request_duration_seconds_bucket{job="{gw}",le="300"} 0+10x70`,
		`ai_api_request_duration_seconds_bucket{job="{gw}",le="+Inf"} 0+10x70`}},
	{"AIDeploySlowFirstToken", []string{ // first tokens after 10 to 30 seconds
		`ai_gateway_time_to_first_token_seconds_bucket{job="{gw}",le="10"} 0+0x70`,
		`ai_gateway_time_to_first_token_seconds_bucket{job="{gw}",le="30"} 0+10x70`,
		`ai_gateway_time_to_first_token_seconds_bucket{job="{gw}",le="+Inf"} 0+10x70`}},
	{"AIDeployBreakerOpen", []string{`ai_gateway_breaker_state{job="{gw}",upstream="http://10.0.0.1:8000"} 2+0x70`}},
	{"AIDeployGPUSaturated", []string{`DCGM_FI_DEV_GPU_UTIL{pod="{pod}",gpu="0"} 97+0x70`}},
	{"AIDeployGPUSaturated", []string{`ai_gpu_utilization_percent{job="{model}",gpu_id="0"} 97+0x70`}}, // without DCGM
	{"AIDeployLowCacheHitRate", []string{
		`ai_gateway_cache_hits_total{job="{gw}",level="l1"} 0+1x70`,
		`ai_gateway_cache_misses_total{job="{gw}"} 0+10x70`}},
	{"AIDeployUpstreamTargetDown", []string{`ai_gateway_upstream_healthy{job="{gw}",pool="default",target="http://10.0.0.1:8000"} 0+0x70`}},
	{"AIDeployRateLimiterRejecting", []string{
		`ai_gateway_limit_decisions_total{job="{gw}",decision="rejected_requests"} 0+5x70`,
		`ai_gateway_limit_decisions_total{job="{gw}",decision="allowed"} 0+10x70`}},
	{"AIDeployModelQueueing", []string{`vllm:num_requests_waiting{job="{model}",pod="{pod}"} 3+0x70`}},
	{"AIDeployModelQueueing", []string{`tgi_queue_size{job="{model}",pod="{pod}"} 3+0x70`}},
}

// healthySeries is a service that works: few errors, fast answers, closed
// breaker, busy but not saturated GPUs, a warm cache, no queue.
var healthySeries = []string{
	`ai_api_requests_total{job="{gw}",status="500"} 0+1x70`,
	`ai_api_requests_total{job="{gw}",status="200"} 0+100x70`,
	`ai_api_request_duration_seconds_bucket{job="{gw}",le="5"} 0+100x70`,
	`ai_api_request_duration_seconds_bucket{job="{gw}",le="60"} 0+101x70`,
	`ai_api_request_duration_seconds_bucket{job="{gw}",le="+Inf"} 0+101x70`,
	`ai_gateway_time_to_first_token_seconds_bucket{job="{gw}",le="1"} 0+100x70`,
	`ai_gateway_time_to_first_token_seconds_bucket{job="{gw}",le="+Inf"} 0+100x70`,
	`ai_gateway_breaker_state{job="{gw}",upstream="http://10.0.0.1:8000"} 0+0x70`,
	`DCGM_FI_DEV_GPU_UTIL{pod="{pod}",gpu="0"} 60+0x70`,
	`ai_gpu_utilization_percent{job="{model}",gpu_id="0"} 60+0x70`,
	`ai_gateway_cache_hits_total{job="{gw}",level="l1"} 0+10x70`,
	`ai_gateway_cache_misses_total{job="{gw}"} 0+10x70`,
	`ai_gateway_upstream_healthy{job="{gw}",pool="default",target="http://10.0.0.1:8000"} 1+0x70`,
	`ai_gateway_limit_decisions_total{job="{gw}",decision="rejected_requests"} 0+0x70`,
	`ai_gateway_limit_decisions_total{job="{gw}",decision="allowed"} 0+10x70`,
	`vllm:num_requests_waiting{job="{model}",pod="{pod}"} 0+0x70`,
	`tgi_queue_size{job="{model}",pod="{pod}"} 0+0x70`,
}

// TestEachAlertCanFire evaluates every rendered alert's expression with
// Prometheus' own PromQL engine, a minute at a time for 70 minutes, as the
// rule manager does: over the samples meant for it each alert reaches firing
// (its expression holds for its whole for:), and over a healthy service none
// fires. An alert whose metric, job or threshold is wrong stays
// silent here, as it would in production.
func TestEachAlertCanFire(t *testing.T) {
	t.Parallel()
	for _, name := range goldenConfigs {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg := loadTestConfig(t, name)
			expand := strings.NewReplacer("{gw}", cfg.Name+"-gateway", "{model}", cfg.Name, "{pod}", cfg.Name+"-blue-7d9f8c6b5-x2x4z").Replace
			groups, errs := rulefmt.Parse(fileData(t, renderTest(t, name, Monitoring), "monitoring/alerts.yaml"), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			load := func(series []string) []string {
				out := make([]string, len(series))
				for i, s := range series {
					out[i] = expand(s)
				}
				return out
			}
			healthy := load(healthySeries)
			for _, r := range groups.Groups[0].Rules {
				if evalAlert(t, r, healthy) {
					t.Errorf("%s fires for a healthy service", r.Alert)
				}
				tried := false
				for _, c := range alertSeries {
					if c.alert != r.Alert || !usesMetricsOf(r.Expr, c.firing) {
						continue
					}
					tried = true
					if !evalAlert(t, r, load(c.firing)) {
						t.Errorf("%s does not fire within 70 minutes of %v", r.Alert, c.firing)
					}
				}
				if !tried {
					t.Errorf("%s: no samples here make it fire; add them to alertSeries", r.Alert)
				}
			}
		})
	}
}

// usesMetricsOf says whether expr reads the first metric of series, so a
// preset's queue alert is driven by its own server's gauge.
func usesMetricsOf(expr string, series []string) bool {
	name, _, _ := strings.Cut(series[0], "{")
	name = strings.TrimSuffix(name, "_bucket")
	return strings.Contains(expr, name)
}

// evalAlert loads the samples and evaluates the rule's expression once a
// minute, as Prometheus does with evaluation_interval 1m. Like the rule
// manager, it counts an alert firing once the expression has returned a
// result at every evaluation for the rule's for: duration.
func evalAlert(t *testing.T, r rulefmt.Rule, series []string) bool {
	t.Helper()
	db := loadSeries(t, series)
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	var pendingSince time.Time
	for m := 0; m <= 70; m++ {
		ts := time.Unix(0, 0).Add(time.Duration(m) * time.Minute)
		q, err := engine.NewInstantQuery(context.Background(), db, nil, r.Expr, ts)
		if err != nil {
			t.Fatalf("%s: %v", r.Alert, err)
		}
		res := q.Exec(context.Background())
		v, err := res.Vector()
		q.Close()
		if res.Err != nil || err != nil {
			t.Fatalf("%s at minute %d: %v %v", r.Alert, m, res.Err, err)
		}
		switch {
		case len(v) == 0:
			pendingSince = time.Time{}
		case pendingSince.IsZero():
			pendingSince = ts
		}
		if !pendingSince.IsZero() && ts.Sub(pendingSince) >= time.Duration(r.For) {
			return true
		}
	}
	return false
}

// loadSeries reads series in promqltest's notation (metric{labels} 0+10x70),
// one sample a minute from time 0, into an in-memory store.
func loadSeries(t *testing.T, series []string) memStore {
	t.Helper()
	var db memStore
	for _, line := range series {
		lset, values, err := parser.NewParser(parser.Options{}).ParseSeriesDesc(line)
		if err != nil {
			t.Fatalf("series %q: %v", line, err)
		}
		var samples []chunks.Sample
		for i, v := range values {
			if !v.Omitted {
				samples = append(samples, floatSample{t: int64(i) * time.Minute.Milliseconds(), f: v.Value})
			}
		}
		db = append(db, storage.NewListSeries(lset, samples))
	}
	return db
}

// memStore is the smallest storage the PromQL engine queries: a list of series.
type memStore []storage.Series

func (m memStore) Querier(_, _ int64) (storage.Querier, error) { return m, nil }

func (m memStore) Select(_ context.Context, sortSeries bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, s := range m {
		ok := true
		for _, matcher := range ms {
			ok = ok && matcher.Matches(s.Labels().Get(matcher.Name))
		}
		if ok {
			out = append(out, s)
		}
	}
	if sortSeries {
		slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	}
	return &seriesList{series: out, i: -1}
}

func (m memStore) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (m memStore) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, nil
}

func (m memStore) Close() error { return nil }

type seriesList struct {
	series []storage.Series
	i      int
}

func (l *seriesList) Next() bool                        { l.i++; return l.i < len(l.series) }
func (l *seriesList) At() storage.Series                { return l.series[l.i] }
func (l *seriesList) Err() error                        { return nil }
func (l *seriesList) Warnings() annotations.Annotations { return nil }

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                      { return s.t }
func (s floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                    { return s.f }
func (s floatSample) H() *histogram.Histogram       { return nil }
func (s floatSample) FH() *histogram.FloatHistogram { return nil }
func (s floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample           { return s }
