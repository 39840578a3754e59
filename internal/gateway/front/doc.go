// Package front is the gateway's client-facing HTTP/1.1 server.
//
// It serves the common request — HTTP/1.1, origin-form target, a
// Content-Length body or none, a head that fits in one buffer — with less
// work per request than net/http's server: no background-read goroutine and
// its abort handshake per request, no deadline changes per request, one
// allocation for all the strings of a request head. A client disconnect is
// still noticed: a request that runs longer than 100 ms (watchAfter) gets a
// watcher that reads from the connection, as net/http does for every request.
//
// Anything else — chunked or Expect: 100-continue bodies, HEAD, upgrades,
// HTTP/1.0, absolute-form targets, oversized or malformed heads — is handed,
// with the bytes read so far, to a net/http server for the rest of that
// connection, so the rarely used corners of HTTP/1.1 keep net/http's
// behaviour. Handlers are plain http.Handlers either way.
//
// Why by hand: the gateway's miss path was measured spending about a third of
// its CPU inside net/http's server, and no maintained library offers a
// faster server behind the http.Handler interface (fasthttp has its own
// request types and does not cancel a handler's context when the client
// goes away, which the gateway needs to stop paying for abandoned
// generations).
package front
