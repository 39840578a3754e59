package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"slices"
	"time"
)

// Entry is one stored answer.
type Entry struct {
	Status   int           // HTTP status, 2xx only in practice
	Header   http.Header   // only the headers that matter for replay (see KeepHeaders)
	Body     []byte        // the body; for Stream, the raw SSE bytes as recorded
	Stream   bool          // Body is a raw text/event-stream recording
	StoredAt time.Time     // when the answer was stored
	TTL      time.Duration // how long after StoredAt it is fresh; Cache.Set fills it
}

// envelopeV1 is the first layout of the envelope:
//
//	version:1 flags:1 status:uint16 storedAt:int64(unix ns) ttl:int64(ns)
//	headerCount:uvarint { name:bytes valueCount:uvarint { value:bytes } }
//	body:bytes crc32c:uint32 (over everything before it)
//
// where bytes is a uvarint length followed by that many bytes; integers are big-endian.
const envelopeV1 = 1

const flagStream = 1

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned by Decode for data that is not a whole, intact envelope.
var ErrCorrupt = errors.New("cache entry is corrupt")

// keptHeaders are the response headers a replayed answer needs: how to read
// the body, and which model made it (a client may pin or log the version).
var keptHeaders = []string{"Content-Type", "Content-Encoding", "Content-Language", "X-Model-Version", "Openai-Model", "Openai-Version"}

// KeepHeaders returns the headers of h worth storing: Content-Type, Content-Encoding,
// Content-Language, the model's version headers (X-Model-Version, OpenAI-Model,
// OpenAI-Version) and any of extra (canonical or not). Per-request headers such as
// request IDs, dates and rate-limit headers are never stored.
func KeepHeaders(h http.Header, extra ...string) http.Header {
	out := make(http.Header, len(keptHeaders))
	for _, names := range [][]string{keptHeaders, extra} {
		for _, name := range names {
			name = http.CanonicalHeaderKey(name)
			if v, ok := h[name]; ok {
				out[name] = slices.Clone(v)
			}
		}
	}
	return out
}

// Size is the number of bytes the entry takes, roughly: what the L1 tier is bounded by.
func (e Entry) Size() int {
	n := 64 + len(e.Body)
	for k, vs := range e.Header {
		n += len(k)
		for _, v := range vs {
			n += len(v) + 16
		}
	}
	return n
}

// AppendEncode appends the entry's envelope, in the current version, to b
// and returns the result.
func (e Entry) AppendEncode(b []byte) []byte {
	start := len(b)
	var flags byte
	if e.Stream {
		flags |= flagStream
	}
	b = append(b, envelopeV1, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(e.Status))
	b = binary.BigEndian.AppendUint64(b, uint64(e.StoredAt.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(e.TTL))
	var few [8]string // the kept headers fit: no allocation for their names
	names := few[:0]
	for k := range e.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	b = binary.AppendUvarint(b, uint64(len(names)))
	for _, k := range names {
		b = appendBytes(b, k)
		b = binary.AppendUvarint(b, uint64(len(e.Header[k])))
		for _, v := range e.Header[k] {
			b = appendBytes(b, v)
		}
	}
	b = appendBytes(b, e.Body)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable))
}

func appendBytes[T string | []byte](b []byte, s T) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Decode reads an envelope written by Encode. It returns ErrCorrupt (wrapped) for truncated
// or altered data and an error naming the version for envelopes of an unknown version.
func Decode(data []byte) (Entry, error) {
	if len(data) == 0 {
		return Entry{}, fmt.Errorf("decoding cache entry: empty: %w", ErrCorrupt)
	}
	if data[0] != envelopeV1 {
		return Entry{}, fmt.Errorf("decoding cache entry: unknown envelope version %d", data[0])
	}
	if len(data) < 2+2+8+8+4 {
		return Entry{}, fmt.Errorf("decoding cache entry: truncated: %w", ErrCorrupt)
	}
	payload, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(payload, crcTable) != sum {
		return Entry{}, fmt.Errorf("decoding cache entry: checksum mismatch: %w", ErrCorrupt)
	}
	r := reader{b: payload[2:]}
	e := Entry{Stream: payload[1]&flagStream != 0}
	e.Status = int(r.uint16())
	e.StoredAt = time.Unix(0, int64(r.uint64()))
	e.TTL = time.Duration(r.uint64())
	if n := r.count(); n > 0 {
		e.Header = make(http.Header, n)
		for range n {
			k := string(r.bytes())
			vs := make([]string, r.count())
			for i := range vs {
				vs[i] = string(r.bytes())
			}
			e.Header[k] = vs
		}
	}
	e.Body = r.bytes()
	if r.err || len(r.b) != 0 {
		return Entry{}, fmt.Errorf("decoding cache entry: malformed fields: %w", ErrCorrupt)
	}
	return e, nil
}

// reader walks an envelope; any overrun sets err and yields zero values from then on.
type reader struct {
	b   []byte
	err bool
}

func (r *reader) uint16() uint16 {
	if r.err || len(r.b) < 2 {
		r.err = true
		return 0
	}
	v := binary.BigEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *reader) uint64() uint64 {
	if r.err || len(r.b) < 8 {
		r.err = true
		return 0
	}
	v := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

// count reads a uvarint that counts items, each taking at least one byte, so a corrupt
// count can never make Decode allocate more than the data could hold.
func (r *reader) count() int {
	if r.err {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > uint64(len(r.b)-n) {
		r.err = true
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *reader) bytes() []byte {
	n := r.count()
	if r.err || n > len(r.b) {
		r.err = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}
