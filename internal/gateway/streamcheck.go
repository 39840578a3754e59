package gateway

import (
	"errors"

	"github.com/aideploy/aideploy/internal/gateway/sse"
)

// errStreamIncomplete is a stream whose body ended cleanly without the end
// of an answer (see openai.StreamWriter.Complete).
var errStreamIncomplete = errors.New("the stream ended without [DONE] or a finish_reason")

// streamCut ends a stream that the model server closed without finishing
// the answer as one cut in transit: the client gets an error event rather
// than a short answer it would take for whole, nothing is cached, and the
// target's outcome counts the failure.
func (g *Gateway) streamCut(x *exchange) error {
	g.log.Warn("model stream ended without [DONE] or a finish_reason; treated as cut", "request_id", x.id)
	x.overflow = true // never cache a partial answer
	_ = sse.WriteError(&x.w, "upstream_error", "the model server ended the stream without finishing the answer")
	x.w.Flush()
	return errStreamIncomplete
}
