package httpwire

import (
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// HeadEnd finds the blank line that ends the head at the start of buf and
// returns the head's length, 0 when it is not all there yet. bare is true
// when a line ends in a bare LF, which the fast paths leave to net/http.
func HeadEnd(buf []byte) (n int, bare bool) {
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

// ParseFields parses the header lines in s (each ending in CRLF, then the
// blank line) into a header with canonical keys and values sliced from s,
// one backing array for all. field sees each key and value first and
// reports false to refuse the head; ok is false then, and for a line
// net/http might read differently (obs-fold, invalid names or values).
func ParseFields(s string, field func(key, value string) bool) (h http.Header, ok bool) {
	// Every line ends in CRLF (HeadEnd found no bare LF), so a line is
	// what lies before its LF's CR: IndexByte and Count of one byte are
	// the vectorised ones.
	n := strings.Count(s, "\n") - 1
	if n < 0 || s != "\r\n" && !strings.HasSuffix(s, "\r\n\r\n") {
		return nil, false
	}
	h = make(http.Header, n)
	strs := make([]string, n)
	for pos := 0; pos < len(s)-2; {
		e := pos + strings.IndexByte(s[pos:], '\n')
		if e == pos || s[e-1] != '\r' {
			return nil, false
		}
		line := s[pos : e-1]
		pos = e + 1
		colon := strings.IndexByte(line, ':')
		if colon <= 0 || !httpguts.ValidHeaderFieldName(line[:colon]) {
			return nil, false // also obs-fold: a line that starts with a space
		}
		value := trimOWS(line[colon+1:])
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, false
		}
		key := textproto.CanonicalMIMEHeaderKey(line[:colon])
		if !field(key, value) {
			return nil, false
		}
		if vv, seen := h[key]; seen {
			h[key] = append(vv, value)
			continue
		}
		strs[0] = value
		h[key] = strs[:1:1]
		strs = strs[1:]
	}
	// net/http's fixPragmaCacheControl: HTTP/1.0 caches' no-cache.
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	return h, true
}

// trimOWS drops the optional whitespace (spaces and tabs) around a field
// value; strings.Trim would build its cutset's table on every call.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ParseLength parses a Content-Length value: digits only, as net/http.
func ParseLength(v string) (int64, bool) {
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
