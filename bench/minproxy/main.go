// Command minproxy is a measuring stick for the gateway benchmark, not a
// product: the minimal net/http reverse proxy, httputil.ReverseProxy on an
// http.Server with one http.Transport, as anyone would write it in Go. The
// gateway is built on the same standard library; beside it, minproxy shows
// how much of the gateway's CPU per request is proxying itself and how much
// the gateway's own work (JSON, cache key and write, limits, metrics).
//
//	minproxy -listen 127.0.0.1:8082 -upstream 127.0.0.1:8000
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to serve")
	up := flag.String("upstream", "127.0.0.1:8000", "upstream address")
	flag.Parse()
	target := &url.URL{Scheme: "http", Host: *up}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 4096, IdleConnTimeout: 90 * time.Second},
		// Streams are flushed at once, as the gateway does.
		FlushInterval: -1,
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
