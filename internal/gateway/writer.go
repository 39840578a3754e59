package gateway

import (
	"net/http"
)

// responseWriter records what the gateway answered, for metrics and logs.
// It implements Unwrap so http.ResponseController reaches the connection.
type responseWriter struct {
	http.ResponseWriter
	flusher     http.Flusher
	status      int
	written     int64
	wroteHeader bool
}

func (w *responseWriter) reset(rw http.ResponseWriter) {
	*w = responseWriter{ResponseWriter: rw}
	w.flusher, _ = rw.(http.Flusher)
}

// WriteHeader records the status once.
func (w *responseWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code >= 200 {
		w.wroteHeader = true
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write sends body bytes, writing a 200 header first if none was written.
func (w *responseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Flush sends buffered bytes to the client now.
func (w *responseWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if w.flusher != nil {
		w.flusher.Flush()
		return
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the writer underneath.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
