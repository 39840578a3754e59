package gateway

import (
	"errors"
	"io"
)

// errTooLarge is a body past maxBodyBytes.
var errTooLarge = errors.New("request body too large")

// firstBodyBuf is the buffer a body starts in: most OpenAI requests fit.
const firstBodyBuf = 4 << 10

// readBody reads r whole, up to limit bytes. The buffer starts small and
// doubles as bytes arrive, at most to the announced length (plus the byte
// that shows the body ends there): memory follows what a client sent, not
// what it claims it will send, so connections that announce large bodies
// and send nothing cost nothing.
func readBody(r io.Reader, announced, limit int64) ([]byte, error) {
	want := limit + 1 // one past the limit tells a body that is too large
	if announced >= 0 && announced < limit {
		want = announced + 1
	}
	buf := make([]byte, 0, min(firstBodyBuf, want))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return nil, errTooLarge
			}
			bound := limit + 1
			if int64(len(buf)) < want {
				bound = want // an honest announcement ends the growth at its size
			}
			grown := make([]byte, len(buf), min(2*int64(cap(buf)), bound))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
