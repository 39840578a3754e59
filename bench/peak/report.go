package main

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// report is what one proxy's clients saw, and the targets of issue 20 for it.
type report struct {
	sent, ok, shed, otherStatus, timeouts, resets int
	silentSeconds                                 int           // whole seconds in which no 200 completed
	p99                                           time.Duration // of the 200 answers
	p99Ratio                                      float64       // p99 of each 200's latency over the model's own at that moment
	recovery                                      time.Duration // from the kill to the end of the first second at half the survivor's capacity; -1: never
	rssGrowth                                     int64
}

func summarise(s schedule, recs []record, idle, peak int64) report {
	r := report{sent: len(recs), rssGrowth: peak - idle}
	secs := int(s.length / time.Second)
	perSecond := make([]int, secs+int(s.clientTimeout/time.Second)+1)
	var lat []time.Duration
	var ratios []float64
	for _, x := range recs {
		switch {
		case x.timeout:
			r.timeouts++
		case x.reset:
			r.resets++
		case x.status == 200:
			r.ok++
			d := x.done - x.sent
			lat = append(lat, d)
			own := max(s.modelLatency(x.sent), s.modelLatency(x.done))
			ratios = append(ratios, float64(d)/float64(own))
			if i := int(x.done / time.Second); i < len(perSecond) {
				perSecond[i]++
			}
		case x.status == 503 || x.status == 429:
			r.shed++
		default:
			r.otherStatus++
		}
	}
	for i := range secs {
		if perSecond[i] == 0 {
			r.silentSeconds++
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		slices.Sort(ratios)
		r.p99 = lat[len(lat)*99/100]
		r.p99Ratio = ratios[len(ratios)*99/100]
	}
	// The survivor answers at most slots/service per second; recovered is
	// the first whole second after the kill with half of that.
	need := int(float64(s.slots) / s.modelLatency(s.killAt).Seconds() / 2)
	r.recovery = -1
	for i := int(s.killAt / time.Second); i < secs; i++ {
		if perSecond[i] >= need {
			r.recovery = max(0, time.Duration(i+1)*time.Second-s.killAt)
			break
		}
	}
	return r
}

// printReport writes both columns and says whether the gateway met each target.
func printReport(w io.Writer, s schedule, gw, ng report) bool {
	fmt.Fprintf(w, "\npeak replay: open-loop %.0f -> %.0f req/s over %s (ramp %s, then hold), two stand-in replicas of %d slots x %s each,\n",
		s.from, s.to, s.length, s.rampFor, s.slots, s.service)
	fmt.Fprintf(w, "3x slower from %s to %s, one replica killed at %s; client timeout %s. Gateway on its default config, nginx on its defaults.\n\n",
		s.slowAt, s.fastAt, s.killAt, s.clientTimeout)
	allOK := true
	row := func(name string, g, n string, ok *bool) {
		verdict := ""
		if ok != nil {
			verdict = "ok"
			if !*ok {
				verdict, allOK = "FAIL", false
			}
		}
		fmt.Fprintf(w, "%-44s %16s %16s  %s\n", name, g, n, verdict)
	}
	b := func(v bool) *bool { return &v }
	d := func(x int) string { return fmt.Sprint(x) }
	row("", "gateway", "nginx", nil)
	row("requests sent", d(gw.sent), d(ng.sent), nil)
	row("200 answers", d(gw.ok), d(ng.ok), nil)
	row("fast refusals (503/429 with Retry-After)", d(gw.shed), d(ng.shed), nil)
	row("other error statuses (502/504 ...)", d(gw.otherStatus), d(ng.otherStatus), nil)
	row("timeouts or resets (target 0)", d(gw.timeouts+gw.resets), d(ng.timeouts+ng.resets), b(gw.timeouts+gw.resets == 0))
	row("seconds without a 200 (target 0)", d(gw.silentSeconds), d(ng.silentSeconds), b(gw.silentSeconds == 0))
	row("p99 of 200s", gw.p99.Round(time.Millisecond).String(), ng.p99.Round(time.Millisecond).String(), nil)
	row("p99 of 200s / model's latency (target <= 2)", fmt.Sprintf("%.2f", gw.p99Ratio), fmt.Sprintf("%.2f", ng.p99Ratio), b(gw.ok > 0 && gw.p99Ratio <= 2))
	rec := func(r report) string {
		if r.recovery < 0 {
			return "never"
		}
		return r.recovery.String()
	}
	row("recovery after the kill (target <= 5s)", rec(gw), rec(ng), b(gw.recovery >= 0 && gw.recovery <= 5*time.Second))
	mib := func(x int64) string { return fmt.Sprintf("%+.1f MiB", float64(x)/(1<<20)) }
	row("RSS growth over idle (target <= +64 MiB)", mib(gw.rssGrowth), mib(ng.rssGrowth), b(gw.rssGrowth <= 64<<20))
	return allOK
}
