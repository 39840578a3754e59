package front

import (
	"bytes"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"

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

// headEnd finds the blank line that ends the head at the start of buf and
// returns the head's length; 0 means more bytes are needed. bare is true when
// a line ends in a bare LF, which net/http accepts and the fast path leaves to it.
func headEnd(buf []byte) (n int, bare bool) {
	start := 0 // start of the current line
	for {
		j := bytes.IndexByte(buf[start:], '\n')
		if j < 0 {
			return 0, false
		}
		j += start
		if j == 0 || buf[j-1] != '\r' {
			return 0, true
		}
		if j-1 == start {
			return j + 1, false
		}
		start = j + 1
	}
}

// parseHead parses a complete head (headEnd's bytes). ok false means the
// request is outside the fast path, valid or not, and goes to net/http, which
// answers it or rejects it as it always has. Every request parseHead accepts,
// net/http's parser accepts with the same meaning (FuzzParseHead checks).
func parseHead(b []byte) (h head, ok bool) {
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
	u, err := url.ParseRequestURI(h.target)
	if err != nil {
		return h, false // net/http answers 400
	}
	h.url = u
	switch h.method {
	case http.MethodHead, http.MethodConnect, "PRI":
		return h, false
	}

	pos := eol + 2
	n := strings.Count(s[pos:], "\r\n") - 1 // header lines
	h.header = make(http.Header, n)
	strs := make([]string, n)
	hosts, lengths := 0, 0
	for pos < len(s)-2 {
		e := pos + strings.Index(s[pos:], "\r\n")
		line := s[pos:e]
		pos = e + 2
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(line[:colon]) {
			return h, false // also obs-fold: a line that starts with a space
		}
		value := strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldValue(value) {
			return h, false
		}
		key := textproto.CanonicalMIMEHeaderKey(line[:colon])
		switch key {
		case "Host":
			hosts++
			h.host = value
		case "Content-Length":
			lengths++
			cl, ok := parseLength(value)
			if !ok {
				return h, false
			}
			h.contentLength = cl
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "upgrade") {
				return h, false
			}
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") {
				h.close = true
			}
		case "Transfer-Encoding", "Expect", "Upgrade":
			return h, false
		}
		if vv, seen := h.header[key]; seen {
			h.header[key] = append(vv, value)
			continue
		}
		strs[0] = value
		h.header[key] = strs[:1:1]
		strs = strs[1:]
	}
	if hosts != 1 || lengths > 1 || !httpguts.ValidHostHeader(h.host) {
		return h, false
	}
	delete(h.header, "Host") // net/http moves it to Request.Host
	// net/http's fixPragmaCacheControl: HTTP/1.0 caches' no-cache.
	if p := h.header["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h.header["Cache-Control"]; !ok {
			h.header["Cache-Control"] = []string{"no-cache"}
		}
	}
	return h, true
}

// parseLength parses a Content-Length value: digits only, as net/http.
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
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
