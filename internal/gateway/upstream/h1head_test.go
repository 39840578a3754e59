package upstream

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
)

func TestReadResponseFastPath(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://m/v1/chat/completions", nil)
	in := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\ncontent-length: 5\r\nX-Model-Version: v1\r\nX-Model-Version: v2\r\n\r\nhelloHTTP/1.1 204 No Content\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	resp, err := readResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := resp.Body.(*lengthBody); !ok {
		t.Fatalf("body %T: the common answer missed the fast path", resp.Body)
	}
	want := http.Header{"Content-Type": {"application/json"}, "Content-Length": {"5"}, "X-Model-Version": {"v1", "v2"}}
	if resp.StatusCode != 200 || resp.Status != "200 OK" || resp.ContentLength != 5 || !reflect.DeepEqual(resp.Header, want) {
		t.Fatalf("got %d %q cl %d %v", resp.StatusCode, resp.Status, resp.ContentLength, resp.Header)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "hello" {
		t.Fatalf("body %q, %v", b, err)
	}
	// The next answer on the connection starts right after the body.
	resp, err = readResponse(br, req)
	if err != nil || resp.StatusCode != 204 || resp.Body != http.NoBody {
		t.Fatalf("second answer: %v %v", resp, err)
	}
}

func TestReadResponseFallsBackToNetHTTP(t *testing.T) {
	req, _ := http.NewRequest(http.MethodPost, "http://m/", nil)
	for name, in := range map[string]string{
		"chunked":     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"bare LF":     "HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
		"HTTP/1.0":    "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"until close": "HTTP/1.1 200 OK\r\n\r\nhello",
		"interim":     "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"huge head":   "HTTP/1.1 200 OK\r\nX-Big: " + strings.Repeat("a", 5000) + "\r\nContent-Length: 5\r\n\r\nhello",
	} {
		t.Run(name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(in), 4096)
			resp, err := readResponse(br, req)
			for err == nil && resp.StatusCode < 200 {
				resp, err = readResponse(br, req)
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != "hello" || resp.StatusCode != 200 {
				t.Fatalf("%d %q %v", resp.StatusCode, b, err)
			}
		})
	}
}

func TestReadResponseHeadInPieces(t *testing.T) {
	req, _ := http.NewRequest(http.MethodGet, "http://m/", nil)
	in := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	br := bufio.NewReader(&oneByteReader{r: strings.NewReader(in)})
	resp, err := readResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	// A connection that ends before any byte: as http.ReadResponse says it.
	if _, err := readResponse(bufio.NewReader(strings.NewReader("")), req); err != io.ErrUnexpectedEOF {
		t.Fatalf("empty: %v", err)
	}
	// And a body cut short.
	resp, err = readResponse(bufio.NewReader(strings.NewReader("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nshort")), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != io.ErrUnexpectedEOF {
		t.Fatalf("cut body: %v", err)
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

// FuzzParseResponseHead checks that every head the fast path takes means to
// http.ReadResponse what it means to the fast path.
func FuzzParseResponseHead(f *testing.F) {
	f.Add("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\nhello", "POST")
	f.Add("HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n", "GET")
	f.Add("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nPragma: no-cache\r\nconnection: Close\r\n\r\nabc", "HEAD")
	f.Add("HTTP/1.1 404\r\nX-A:  b \r\nx-a: c\r\nContent-Length: 0\r\n\r\n", "GET")
	f.Fuzz(func(t *testing.T, in, method string) {
		if method != http.MethodGet && method != http.MethodHead && method != http.MethodPost {
			return
		}
		req, _ := http.NewRequest(method, "http://m/", nil)
		n, _ := httpwire.HeadEnd([]byte(in))
		if n == 0 {
			return
		}
		got, ok := parseResponseHead([]byte(in[:n]), req)
		if !ok {
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), req)
		if err != nil {
			t.Fatalf("fast path took a head net/http rejects (%v): %q", err, in)
		}
		if got.StatusCode != want.StatusCode || got.Status != want.Status || got.ContentLength != want.ContentLength ||
			got.Close != want.Close || !reflect.DeepEqual(got.Header, want.Header) {
			t.Fatalf("%q:\nfast %d %q cl %d close %v %v\nhttp %d %q cl %d close %v %v", in,
				got.StatusCode, got.Status, got.ContentLength, got.Close, got.Header,
				want.StatusCode, want.Status, want.ContentLength, want.Close, want.Header)
		}
		wb, werr := io.ReadAll(want.Body)
		var gb []byte
		var gerr error
		if got.ContentLength > 0 && got.Body == nil {
			br := bufio.NewReader(strings.NewReader(in[n:]))
			gb, gerr = io.ReadAll(&lengthBody{r: br, remaining: got.ContentLength})
		} else if got.Body != nil {
			gb, gerr = io.ReadAll(got.Body)
		}
		if !bytes.Equal(gb, wb) || (gerr == nil) != (werr == nil) {
			t.Fatalf("%q: body %q (%v), net/http %q (%v)", in, gb, gerr, wb, werr)
		}
	})
}
