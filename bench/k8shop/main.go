// Command k8shop measures what the gateway-to-model hop adds: it sends sequential
// non-streaming chat requests to each URL in turn, in interleaved rounds, and prints
// the median p50/p99 latency of each. bench/k8shop/run.sh sets up the hops.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	n := flag.Int("n", 2000, "requests per round")
	rounds := flag.Int("rounds", 3, "rounds")
	flag.Parse()
	urls := flag.Args()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	res := map[string][][2]time.Duration{}
	for r := 0; r < *rounds; r++ {
		for _, u := range urls {
			var lat []time.Duration
			for i := 0; i < *n+200; i++ {
				body := fmt.Sprintf(`{"model":"m","messages":[{"role":"user","content":"hi %d-%d"}],"max_tokens":8}`, r, i)
				t0 := time.Now()
				resp, err := c.Post(u+"/v1/chat/completions", "application/json", bytes.NewBufferString(body))
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fmt.Fprintln(os.Stderr, u, resp.Status)
					os.Exit(1)
				}
				if i >= 200 { // warm-up
					lat = append(lat, time.Since(t0))
				}
			}
			slices.Sort(lat)
			res[u] = append(res[u], [2]time.Duration{lat[len(lat)/2], lat[len(lat)*99/100]})
		}
	}
	for _, u := range urls {
		var p50, p99 []time.Duration
		for _, x := range res[u] {
			p50 = append(p50, x[0])
			p99 = append(p99, x[1])
		}
		slices.Sort(p50)
		slices.Sort(p99)
		fmt.Printf("%-28s p50 %8s  p99 %8s   (median of %d rounds; p50s %v)\n", strings.TrimPrefix(u, "http://"), p50[len(p50)/2].Round(time.Microsecond), p99[len(p99)/2].Round(time.Microsecond), *rounds, p50)
	}
}
