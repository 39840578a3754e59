package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// keyVersion changes whenever the key layout changes, so old entries are simply never found.
const keyVersion = "aideploy-cache-key/1"

// Key returns the cache key of a request: SHA-256, in hex, of the tenant, method, route
// template, model and canonical JSON body, each length-prefixed so that no two different
// requests frame to the same bytes. Shared routes pass tenant "". An empty body hashes as
// such; a body that is not valid JSON is an error (the request should be refused with 400).
func Key(tenant, method, route, model string, body []byte) (string, error) {
	canon, err := appendCanonical(make([]byte, 0, len(body)), body)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var lenBuf [binary.MaxVarintLen64]byte
	for _, part := range [][]byte{[]byte(keyVersion), []byte(tenant), []byte(method), []byte(route), []byte(model), canon} {
		h.Write(lenBuf[:binary.PutUvarint(lenBuf[:], uint64(len(part)))])
		h.Write(part)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])), nil
}

// Canonical rewrites a JSON document with sorted object keys, no insignificant whitespace,
// strings re-escaped one way, and numbers exactly as written. An empty or all-space body
// canonicalises to nothing.
func Canonical(body []byte) ([]byte, error) {
	return appendCanonical(nil, body)
}

func appendCanonical(dst, body []byte) ([]byte, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return dst, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("reading the request body as JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading the request body as JSON: more than one value")
	}
	return appendValue(dst, v), nil
}

func appendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		if v {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case json.Number:
		return append(dst, v...)
	case string:
		return appendString(dst, v)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendValue(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, strings.Compare)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendValue(dst, v[k])
		}
		return append(dst, '}')
	}
	// The decoder produces only the types above.
	panic(fmt.Sprintf("cache: unexpected JSON value of type %T", v))
}

const hexDigits = "0123456789abcdef"

// appendString writes s with the minimal escapes: quote, backslash and control characters.
// The decoder has already replaced invalid UTF-8 with U+FFFD, so s is valid UTF-8.
func appendString(dst []byte, s string) []byte {
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
