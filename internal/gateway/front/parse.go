package front

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
	"golang.org/x/net/http/httpguts"
)

// head is a request head the fast path serves. Its strings share one
// allocation: the head's bytes as a string.
type head struct {
	method, target, host string
	url                  *url.URL
	header               http.Header
	contentLength        int64
	close                bool // Connection: close
}

// parseHead parses a complete head (httpwire.HeadEnd's bytes). ok false means the
// request is outside the fast path, valid or not, and goes to net/http, which
// answers it or rejects it as it always has. Every request parseHead accepts,
// net/http's parser accepts with the same meaning (FuzzParseHead checks).
//
// prev, when not nil, is the connection's last head: a request for the same
// target gets its URL, which handlers only read (http.Handler's contract), so
// a keep-alive client that asks for one route parses it once.
func parseHead(b []byte, prev *head) (h head, ok bool) {
	s := string(b)
	eol := strings.Index(s, "\r\n")
	line := s[:eol]
	sp1 := strings.IndexByte(line, ' ')
	if sp1 <= 0 {
		return h, false
	}
	h.method = line[:sp1]
	rest := line[sp1+1:]
	sp2 := strings.IndexByte(rest, ' ')
	if sp2 <= 0 || rest[sp2+1:] != "HTTP/1.1" {
		return h, false
	}
	h.target = rest[:sp2]
	if !validMethod(h.method) || !validTarget(h.target) {
		return h, false
	}
	if prev != nil && prev.url != nil && prev.target == h.target {
		h.url = prev.url
	} else {
		u, err := url.ParseRequestURI(h.target)
		if err != nil {
			return h, false // net/http answers 400
		}
		h.url = u
	}
	switch h.method {
	case http.MethodHead, http.MethodConnect, "PRI":
		return h, false
	}

	hosts, lengths := 0, 0
	header, ok := httpwire.ParseFields(s[eol+2:], func(key, value string) bool {
		switch key {
		case "Host":
			hosts++
			h.host = value
		case "Content-Length":
			lengths++
			cl, ok := httpwire.ParseLength(value)
			if !ok {
				return false
			}
			h.contentLength = cl
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "upgrade") {
				return false
			}
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") {
				h.close = true
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return false
		}
		return true
	})
	if !ok || hosts != 1 || lengths > 1 || !httpguts.ValidHostHeader(h.host) {
		return h, false
	}
	delete(header, "Host") // net/http moves it to Request.Host
	h.header = header
	return h, true
}

func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}

// validTarget accepts an origin-form target of visible ASCII; anything else
// (absolute-form, asterisk-form, raw bytes) is net/http's to judge.
func validTarget(t string) bool {
	if t == "" || t[0] != '/' || strings.HasPrefix(t, "//") {
		return false
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
