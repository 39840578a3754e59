// Command peak replays the field guide's traffic peak, open-loop on a fixed
// schedule, through the gateway on its default settings and through nginx at
// once, and prints what clients saw from each: timeouts, seconds without an
// answer, p99 against the model's own latency, recovery after a replica dies
// and the proxy's memory. Run it from the repository root: go run ./bench/peak.
package main
