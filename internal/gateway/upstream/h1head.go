package upstream

import (
	"bufio"
	"io"
	"net/http"
	"strings"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
	"golang.org/x/net/http/httpguts"
)

// readResponse reads an answer's status line and header. The common answer
// of a model (HTTP/1.1, a final status, a Content-Length body) is parsed
// from the read buffer in place: one string for the whole head, header
// values sliced from it. Anything else, and a head larger than the buffer,
// goes to http.ReadResponse, which reads it from the same untouched buffer.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		n, bare := httpwire.HeadEnd(buf)
		if n > 0 {
			resp, ok := parseResponseHead(buf[:n], req)
			if !ok {
				break
			}
			_, _ = br.Discard(n)
			if resp.ContentLength > 0 {
				resp.Body = &lengthBody{r: br, remaining: resp.ContentLength}
			}
			return resp, nil
		}
		if bare || len(buf) == br.Size() {
			break
		}
		if _, err := br.Peek(len(buf) + 1); err != nil {
			if len(buf) > 0 {
				break // let net/http name what is wrong with a partial head
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF // as http.ReadResponse says it
			}
			return nil, err
		}
	}
	return http.ReadResponse(br, req)
}

// parseResponseHead parses a complete head; ok false means it is outside the
// fast path, valid or not. Every head it accepts, http.ReadResponse accepts
// with the same meaning (FuzzParseResponseHead checks).
func parseResponseHead(b []byte, req *http.Request) (*http.Response, bool) {
	s := string(b)
	eol := strings.Index(s, "\r\n")
	line := s[:eol]
	// "HTTP/1.1 200 OK": a three-digit final status, an optional reason.
	if len(line) < 12 || line[:9] != "HTTP/1.1 " || (len(line) > 12 && line[12] != ' ') {
		return nil, false
	}
	code := 0
	for i := 9; i < 12; i++ {
		c := line[i]
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusSwitchingProtocols {
		return nil, false
	}
	for i := 12; i < len(line); i++ {
		if c := line[i]; c < ' ' && c != '\t' || c == 0x7f {
			return nil, false
		}
	}
	resp := &http.Response{
		Status: line[9:], StatusCode: code, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Request: req, ContentLength: -1,
	}
	lengths := 0
	h, ok := httpwire.ParseFields(s[eol+2:], func(key, value string) bool {
		switch key {
		case "Content-Length":
			lengths++
			cl, ok := httpwire.ParseLength(value)
			if !ok {
				return false
			}
			resp.ContentLength = cl
		case "Connection":
			if httpguts.HeaderValuesContainsToken([]string{value}, "close") {
				resp.Close = true
			}
		case "Transfer-Encoding", "Trailer":
			return false
		}
		return true
	})
	if !ok {
		return nil, false
	}
	if resp.Close {
		delete(h, "Connection") // as net/http's shouldClose does
	}
	resp.Header = h
	noBody := req.Method == http.MethodHead || code == http.StatusNoContent || code == http.StatusNotModified
	switch {
	case lengths > 1:
		return nil, false
	case noBody:
		if req.Method != http.MethodHead {
			resp.ContentLength = 0 // a HEAD answer keeps the length it declares
		}
		resp.Body = http.NoBody
	case lengths == 0:
		return nil, false // the body ends when the connection does: net/http's
	case resp.ContentLength == 0:
		resp.Body = http.NoBody
	}
	return resp, true
}

// lengthBody is a body of known length read from the connection's buffer.
type lengthBody struct {
	r         *bufio.Reader
	remaining int64
}

// Read returns io.EOF with the last bytes, so the connection goes back to
// the pool in the same call.
func (b *lengthBody) Read(p []byte) (int, error) {
	if b.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.r.Read(p)
	b.remaining -= int64(n)
	switch {
	case b.remaining == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
