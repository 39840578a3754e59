package front

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
)

func TestParseHeadFastPath(t *testing.T) {
	raw := "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: gw:8080\r\nContent-Type: application/json\r\n" +
		"content-length: 12\r\nX-Multi: a\r\nX-Multi:  b \r\nConnection: keep-alive, close\r\nPragma: no-cache\r\n\r\n"
	n, bare := httpwire.HeadEnd([]byte(raw + "body bytes.."))
	if bare || n != len(raw) {
		t.Fatalf("headEnd = %d, %v; want %d", n, bare, len(raw))
	}
	h, ok := parseHead([]byte(raw), nil)
	if !ok {
		t.Fatal("a plain POST was not taken by the fast path")
	}
	if h.method != "POST" || h.target != "/v1/chat/completions?x=1" || h.host != "gw:8080" || h.contentLength != 12 || !h.close {
		t.Errorf("head = %+v", h)
	}
	want := http.Header{"Content-Type": {"application/json"}, "Content-Length": {"12"}, "X-Multi": {"a", "b"},
		"Connection": {"keep-alive, close"}, "Pragma": {"no-cache"}, "Cache-Control": {"no-cache"}}
	if !reflect.DeepEqual(h.header, want) {
		t.Errorf("header = %v\nwant %v", h.header, want)
	}
}

// Requests outside the fast path go to net/http; none is answered by the fast path.
func TestParseHeadHandsOff(t *testing.T) {
	for name, raw := range map[string]string{
		"chunked body":        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"CL and TE":           "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"two lengths":         "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
		"signed length":       "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
		"expect":              "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
		"upgrade":             "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"HTTP/1.0":            "GET / HTTP/1.0\r\n\r\n",
		"HEAD":                "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
		"absolute form":       "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"asterisk":            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		"h2 preface":          "PRI * HTTP/2.0\r\n\r\n",
		"no host":             "GET / HTTP/1.1\r\n\r\n",
		"two hosts":           "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"space before colon":  "GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
		"obs-fold":            "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
		"control in value":    "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\r\n\r\n",
		"raw byte in target":  "GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n",
		"bad method":          "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",
		"leading blank line":  "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"bad host":            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"double slash target": "GET //evil/ HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			n, bare := httpwire.HeadEnd([]byte(raw))
			if bare {
				return
			}
			if n == 0 {
				t.Fatalf("no head end found in %q", raw)
			}
			if _, ok := parseHead([]byte(raw[:n]), nil); ok {
				t.Errorf("the fast path took %q", raw)
			}
		})
	}
	if _, bare := httpwire.HeadEnd([]byte("GET / HTTP/1.1\nHost: a\n\n")); !bare {
		t.Error("bare LF lines were not left to net/http")
	}
}

// FuzzParseHead checks that every head the fast path takes, net/http's own
// parser takes with the same method, target, host, header and length.
func FuzzParseHead(f *testing.F) {
	for _, s := range []string{
		"POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nAuthorization: Bearer k\r\n\r\n",
		"GET /healthz HTTP/1.1\r\nHost: [::1]:80\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
		"GET /a%20b?c=d HTTP/1.1\r\nHost: a\r\nPragma: no-cache\r\nConnection: close\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-A:\tb\t\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, bare := httpwire.HeadEnd(b)
		if bare || n == 0 {
			return
		}
		h, ok := parseHead(b[:n], nil)
		if !ok {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b[:n])))
		if err != nil {
			t.Fatalf("the fast path took %q; net/http refuses it: %v", b[:n], err)
		}
		if req.Method != h.method || req.RequestURI != h.target || req.Host != h.host {
			t.Fatalf("%q: fast path %s %s host %q; net/http %s %s host %q", b[:n], h.method, h.target, h.host, req.Method, req.RequestURI, req.Host)
		}
		if req.ContentLength != h.contentLength && !(req.ContentLength == -1 && h.contentLength == 0) {
			t.Fatalf("%q: length %d, net/http %d", b[:n], h.contentLength, req.ContentLength)
		}
		if req.Close != h.close {
			t.Fatalf("%q: close %v, net/http %v", b[:n], h.close, req.Close)
		}
		if !reflect.DeepEqual(req.Header, h.header) {
			t.Fatalf("%q: header %v\nnet/http %v", b[:n], h.header, req.Header)
		}
		if *req.URL != *h.url {
			t.Fatalf("%q: URL %#v, net/http %#v", b[:n], h.url, req.URL)
		}
	})
}
