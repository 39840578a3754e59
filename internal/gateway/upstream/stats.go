package upstream

import (
	"math"
	"sync"
	"time"
)

const (
	ringSeconds = 300 // the longest stats window
	histBuckets = 40
	histBase    = 0.001 // seconds: the upper bound of the first latency bucket
	histFactor  = 1.5
)

// ring counts requests, errors and a latency histogram per second, for the
// admin API's stats over a recent window.
type ring struct {
	mu sync.Mutex
	b  [ringSeconds]second
}

type second struct {
	unix int64
	req  int64
	errs int64
	hist [histBuckets]uint32
}

var logFactor = math.Log(histFactor)

func histIndex(d time.Duration) int {
	s := d.Seconds()
	if s <= histBase {
		return 0
	}
	i := int(math.Ceil(math.Log(s/histBase) / logFactor))
	return min(i, histBuckets-1)
}

func histUpper(i int) float64 { return histBase * math.Pow(histFactor, float64(i)) }

func (r *ring) record(now time.Time, d time.Duration, failed bool) {
	sec := now.Unix()
	i := histIndex(d)
	r.mu.Lock()
	b := &r.b[sec%ringSeconds]
	if b.unix != sec {
		*b = second{unix: sec}
	}
	b.req++
	if failed {
		b.errs++
	}
	b.hist[i]++
	r.mu.Unlock()
}

// summary is what a window adds up to.
type summary struct {
	req, errs int64
	hist      [histBuckets]uint64
}

func (r *ring) sum(now time.Time, window time.Duration, into *summary) {
	secs := int64(math.Ceil(window.Seconds()))
	secs = max(1, min(secs, ringSeconds))
	end := now.Unix()
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := end - secs + 1; s <= end; s++ {
		b := &r.b[s%ringSeconds]
		if b.unix != s {
			continue
		}
		into.req += b.req
		into.errs += b.errs
		for i, n := range b.hist {
			into.hist[i] += uint64(n)
		}
	}
}

func (s *summary) p99() float64 {
	var total uint64
	for _, n := range s.hist {
		total += n
	}
	if total == 0 {
		return 0
	}
	want := uint64(math.Ceil(float64(total) * 0.99))
	var acc uint64
	for i, n := range s.hist {
		acc += n
		if acc >= want {
			return histUpper(i)
		}
	}
	return histUpper(histBuckets - 1)
}
