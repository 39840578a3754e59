package front

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aideploy/aideploy/internal/gateway/httpwire"
	"golang.org/x/net/http/httpguts"
)

// pendingMax is how much body a response holds back when it has no
// Content-Length, so that a small answer finished without a flush gets one.
const pendingMax = 2 << 10

// response is the http.ResponseWriter of the fast path.
type response struct {
	c           *conn
	header      http.Header
	status      int
	wroteHeader bool // a final status was set
	committed   bool // the head went to the write buffer
	chunked     bool
	noBody      bool  // the status allows no body
	cl          int64 // the declared Content-Length; -1: none
	written     int64
	pending     []byte
	done        bool // the handler returned
	closeAfter  bool
}

func (w *response) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header, 8)
	}
	return w.header
}

func (w *response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.wroteHeader {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An interim answer (103 Early Hints): sent at once, with the header so far.
		w.writeStatusLine(code)
		w.writeHeaderFields(false)
		_, _ = w.c.bw.WriteString("\r\n")
		w.flushErr()
		return
	}
	w.wroteHeader, w.status = true, code
	w.noBody = code < 200 || code == http.StatusNoContent || code == http.StatusNotModified
	if v := w.header["Content-Length"]; len(v) > 0 {
		if n, ok := httpwire.ParseLength(strings.TrimSpace(v[0])); ok && !w.noBody {
			w.cl = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	if httpguts.HeaderValuesContainsToken(w.header["Connection"], "close") {
		w.closeAfter = true
	}
}

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if w.cl >= 0 && w.written+int64(len(p)) > w.cl {
		return 0, http.ErrContentLength
	}
	if w.c.broken.Load() {
		return 0, errClientGone
	}
	w.written += int64(len(p))
	if !w.committed {
		if w.cl < 0 && len(w.pending)+len(p) <= pendingMax {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(p)
	}
	if err := w.writeBody(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

var errClientGone = errors.New("front: the client connection is closed")

// Flush sends the head and the body so far to the client.
func (w *response) Flush() { _ = w.FlushError() }

// FlushError is Flush that reports a failed write (http.ResponseController uses it).
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	return w.flushErr()
}

func (w *response) flushErr() error {
	if err := w.c.bw.Flush(); err != nil {
		w.c.broken.Store(true)
		return err
	}
	return nil
}

// commit writes the head. first is the first body bytes, for sniffing a
// Content-Type the handler did not set.
func (w *response) commit(first []byte) {
	w.committed = true
	if w.c.s.shutting.Load() {
		w.closeAfter = true // Shutdown is waiting for this answer: no next request
	}
	h := w.Header()
	if !w.noBody {
		switch {
		case w.cl >= 0:
		case w.done:
			w.cl = int64(len(w.pending))
			h["Content-Length"] = []string{strconv.Itoa(len(w.pending))}
		default:
			w.chunked = true
		}
		if _, ok := h["Content-Type"]; !ok {
			sniff := w.pending
			if len(sniff) == 0 {
				sniff = first
			}
			if len(sniff) > 0 {
				h["Content-Type"] = []string{http.DetectContentType(sniff)}
			}
		}
	}
	w.writeStatusLine(w.status)
	w.writeHeaderFields(true)
	bw := w.c.bw
	if w.chunked {
		_, _ = bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if w.closeAfter {
		_, _ = bw.WriteString("Connection: close\r\n")
	}
	_, _ = bw.WriteString("\r\n")
	if len(w.pending) > 0 {
		p := w.pending
		w.pending = nil
		_ = w.writeBody(p)
	}
}

func (w *response) writeStatusLine(code int) {
	bw := w.c.bw
	if code == http.StatusOK {
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\n")
		return
	}
	var b [3]byte
	_, _ = bw.WriteString("HTTP/1.1 ")
	_, _ = bw.Write(strconv.AppendInt(b[:0], int64(code), 10))
	_ = bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	_, _ = bw.WriteString(text)
	_, _ = bw.WriteString("\r\n")
}

// writeHeaderFields writes the handler's header; final adds Date and leaves
// out the framing fields that commit decides.
func (w *response) writeHeaderFields(final bool) {
	bw := w.c.bw
	hasDate := false
	for k, vv := range w.header {
		switch k {
		case "Transfer-Encoding", "Connection":
			continue
		case "Date":
			hasDate = true
		}
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range vv {
			if strings.ContainsAny(v, "\r\n") {
				v = strings.NewReplacer("\r", " ", "\n", " ").Replace(v)
			}
			_, _ = bw.WriteString(k)
			_, _ = bw.WriteString(": ")
			_, _ = bw.WriteString(v)
			_, _ = bw.WriteString("\r\n")
		}
	}
	if final && !hasDate {
		_, _ = bw.WriteString("Date: ")
		_, _ = bw.Write(w.c.date.get())
		_, _ = bw.WriteString("\r\n")
	}
}

func (w *response) writeBody(p []byte) error {
	bw := w.c.bw
	if w.chunked {
		var b [16]byte
		_, _ = bw.Write(strconv.AppendInt(b[:0], int64(len(p)), 16))
		_, _ = bw.WriteString("\r\n")
		_, _ = bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return w.writeErr(err)
	}
	_, err := bw.Write(p)
	return w.writeErr(err)
}

func (w *response) writeErr(err error) error {
	if err != nil {
		w.c.broken.Store(true)
	}
	return err
}

// finish completes the answer after the handler returned.
func (w *response) finish() {
	w.done = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	if w.chunked {
		_, _ = w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.cl >= 0 && w.written < w.cl {
		w.closeAfter = true // a short body: the client sees the cut
	}
	_ = w.flushErr()
}

// dateCache formats the Date header once a second per connection.
type dateCache struct {
	sec int64
	buf []byte
}

func (d *dateCache) get() []byte {
	now := time.Now()
	if s := now.Unix(); s != d.sec || d.buf == nil {
		d.sec = s
		d.buf = now.UTC().AppendFormat(d.buf[:0], http.TimeFormat)
	}
	return d.buf
}
