package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"sync"
	"unicode/utf8"
)

// keyVersion changes whenever the key layout changes, so old entries are simply never found.
//
// Version 2 added the credentials a model server checks to the tenant part
// (see Scope): an entry stored under version 1 for a caller with a key must
// never answer one without.
const keyVersion = "aideploy-cache-key/2"

// Key returns the cache key of a request: SHA-256, in hex, of the tenant, method, route
// template and model, each length-prefixed, followed by the canonical JSON body, so that no
// two different requests frame to the same bytes. Shared routes pass tenant "". An empty
// body hashes as such; a body that is not valid JSON is an error (refuse it with 400).
func Key(tenant, method, route, model string, body []byte) (string, error) {
	ks := keyScratchPool.Get().(*keyScratch)
	defer ks.put()
	buf := ks.buf[:0]
	for _, part := range [...]string{keyVersion, tenant, method, route, model} {
		buf = binary.AppendUvarint(buf, uint64(len(part)))
		buf = append(buf, part...)
	}
	buf, err := ks.c.appendCanonical(buf, body)
	if err != nil {
		return "", err
	}
	ks.buf = buf
	sum := sha256.Sum256(buf)
	var out [2 * sha256.Size]byte
	hex.Encode(out[:], sum[:])
	return string(out[:]), nil
}

// Scope joins the tenant and the other parts of a request that change whom
// an answer may go to (such as a hash of the credentials the model server
// checks) into the tenant argument of Key, each length-prefixed so that no
// two different lists join to the same string. Scope(tenant) is tenant.
func Scope(tenant string, parts ...string) string {
	if len(parts) == 0 {
		return tenant
	}
	b := binary.AppendUvarint(nil, uint64(len(tenant)))
	b = append(b, tenant...)
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return string(b)
}

// keyScratch holds the buffers of one key computation. Key runs on every
// cacheable request; pooling them leaves one allocation, the key itself.
type keyScratch struct {
	buf []byte
	c   canonicalizer
}

// maxPooledScratch keeps a rare huge body from pinning its buffers in the pool.
const maxPooledScratch = 64 << 10

func (ks *keyScratch) put() {
	if cap(ks.buf) > maxPooledScratch || cap(ks.c.scratch) > maxPooledScratch || cap(ks.c.keys) > maxPooledScratch {
		return
	}
	keyScratchPool.Put(ks)
}

// keyScratchPool is a free list of buffers, not state: what it holds is
// overwritten before each use.
var keyScratchPool = sync.Pool{New: func() any {
	return &keyScratch{buf: make([]byte, 0, 1024), c: canonicalizer{members: make([]member, 0, 16), keys: make([]byte, 0, 256)}}
}}

// Canonical rewrites a JSON document with sorted object keys, no insignificant whitespace,
// strings re-escaped one way, and numbers exactly as written. An empty or all-space body
// canonicalises to nothing.
func Canonical(body []byte) ([]byte, error) {
	return appendCanonical(nil, body)
}

func appendCanonical(dst, body []byte) ([]byte, error) {
	// Sized so that a typical request body never grows them.
	c := canonicalizer{members: make([]member, 0, 16), keys: make([]byte, 0, 256), scratch: make([]byte, 0, len(body))}
	return c.appendCanonical(dst, body)
}

// appendCanonical runs c over body, reusing the stacks c already holds.
func (c *canonicalizer) appendCanonical(dst, body []byte) ([]byte, error) {
	c.src, c.pos, c.depth = body, 0, 0
	c.members, c.keys, c.scratch = c.members[:0], c.keys[:0], c.scratch[:0]
	defer func() { c.src = nil }()
	c.skipSpace()
	if c.pos == len(body) {
		return dst, nil
	}
	out, err := c.value(dst)
	if err == nil {
		if c.skipSpace(); c.pos != len(body) {
			err = c.fail("more than one value")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the request body as JSON: %w", err)
	}
	return out, nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s with the minimal escapes: quote, backslash and control characters.
// The decoder has already replaced invalid UTF-8 with U+FFFD, so s is valid UTF-8.
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf || (c >= 0x20 && c != '"' && c != '\\') {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
