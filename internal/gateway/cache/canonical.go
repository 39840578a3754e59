package cache

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/aideploy/aideploy/internal/gateway/jsonscan"
)

// canonicalizer rewrites one JSON document in canonical form in a single pass. Objects are
// rebuilt with their members sorted by decoded key; the member and key stacks and the
// scratch buffer are shared by all nesting levels, so a document costs a handful of
// allocations rather than one per value.
type canonicalizer struct {
	src     []byte
	pos     int
	depth   int
	members []member // stack of the members of the objects being read
	keys    []byte   // stack of their decoded keys
	scratch []byte
}

// member is one object member: its decoded key in keys and its "key":value text in dst.
type member struct {
	keyOff, keyEnd int
	off, end       int
}

var errSyntax = errors.New("invalid JSON")

func (c *canonicalizer) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", errSyntax, what, c.pos)
}

func (c *canonicalizer) skipSpace() { c.pos = jsonscan.Space(c.src, c.pos) }

func (c *canonicalizer) value(dst []byte) ([]byte, error) {
	c.skipSpace()
	if c.pos >= len(c.src) {
		return nil, c.fail("unexpected end")
	}
	switch ch := c.src[c.pos]; {
	case ch == '{':
		return c.object(dst)
	case ch == '[':
		return c.array(dst)
	case ch == '"':
		return c.str(dst, nil)
	case ch == '-' || ch >= '0' && ch <= '9':
		return c.number(dst)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(c.src[c.pos:], []byte(lit)) {
			c.pos += len(lit)
			return append(dst, lit...), nil
		}
	}
	return nil, c.fail("unexpected character")
}

func (c *canonicalizer) enter() error {
	c.pos++
	if c.depth++; c.depth > jsonscan.MaxDepth { // encoding/json's limit: both accept the same documents
		return c.fail("nesting too deep")
	}
	return nil
}

func (c *canonicalizer) array(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	dst = append(dst, '[')
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == ']' {
		c.pos++
		c.depth--
		return append(dst, ']'), nil
	}
	for {
		var err error
		if dst, err = c.value(dst); err != nil {
			return nil, err
		}
		c.skipSpace()
		if c.pos >= len(c.src) {
			return nil, c.fail("unterminated array")
		}
		switch c.src[c.pos] {
		case ',':
			c.pos++
			dst = append(dst, ',')
		case ']':
			c.pos++
			c.depth--
			return append(dst, ']'), nil
		default:
			return nil, c.fail("expected , or ] in array")
		}
	}
}

func (c *canonicalizer) object(dst []byte) ([]byte, error) {
	if err := c.enter(); err != nil {
		return nil, err
	}
	start, base, keyBase := len(dst), len(c.members), len(c.keys)
	c.skipSpace()
	if c.pos < len(c.src) && c.src[c.pos] == '}' {
		c.pos++
		c.depth--
		return append(dst, '{', '}'), nil
	}
	for {
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != '"' {
			return nil, c.fail("expected a string key")
		}
		m := member{keyOff: len(c.keys), off: len(dst)}
		var err error
		if dst, err = c.str(dst, &c.keys); err != nil {
			return nil, err
		}
		m.keyEnd = len(c.keys)
		c.skipSpace()
		if c.pos >= len(c.src) || c.src[c.pos] != ':' {
			return nil, c.fail("expected : after an object key")
		}
		c.pos++
		dst = append(dst, ':')
		if dst, err = c.value(dst); err != nil {
			return nil, err
		}
		m.end = len(dst)
		c.members = append(c.members, m)
		c.skipSpace()
		if c.pos >= len(c.src) {
			return nil, c.fail("unterminated object")
		}
		if c.src[c.pos] == ',' {
			c.pos++
			continue
		}
		if c.src[c.pos] != '}' {
			return nil, c.fail("expected , or } in object")
		}
		c.pos++
		c.depth--
		break
	}
	dst = c.rebuild(dst, start, c.members[base:])
	c.members, c.keys = c.members[:base], c.keys[:keyBase]
	return dst, nil
}

// rebuild rewrites dst[start:], the members as read, as one object sorted by key. Of
// duplicate keys the last wins, as when decoding into a map.
func (c *canonicalizer) rebuild(dst []byte, start int, ms []member) []byte {
	key := func(m member) []byte { return c.keys[m.keyOff:m.keyEnd] }
	slices.SortStableFunc(ms, func(a, b member) int { return bytes.Compare(key(a), key(b)) })
	c.scratch = append(c.scratch[:0], dst[start:]...)
	dst = append(dst[:start], '{')
	first := true
	for i, m := range ms {
		if i+1 < len(ms) && bytes.Equal(key(m), key(ms[i+1])) {
			continue
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, c.scratch[m.off-start:m.end-start]...)
	}
	return append(dst, '}')
}

// str reads a string, appends it to dst in canonical form and, when decoded is not nil,
// its decoded bytes to *decoded. Invalid UTF-8 and lone surrogates become U+FFFD, as in
// encoding/json.
func (c *canonicalizer) str(dst []byte, decoded *[]byte) ([]byte, error) {
	c.pos++ // opening quote
	// Fast path: nothing to unescape or escape and valid UTF-8: copy as it is.
	for i := c.pos; i < len(c.src); i++ {
		ch := c.src[i]
		if ch == '"' {
			s := c.src[c.pos:i]
			if utf8.Valid(s) {
				if decoded != nil {
					*decoded = append(*decoded, s...)
				}
				c.pos = i + 1
				dst = append(dst, '"')
				dst = append(dst, s...)
				return append(dst, '"'), nil
			}
			break
		}
		if ch == '\\' || ch < 0x20 {
			break
		}
	}
	var buf []byte
	if decoded != nil {
		buf = *decoded
	} else {
		buf = c.scratchString()
	}
	from := len(buf)
	for {
		if c.pos >= len(c.src) {
			return nil, c.fail("unterminated string")
		}
		ch := c.src[c.pos]
		switch {
		case ch == '"':
			c.pos++
			dst = appendString(dst, buf[from:])
			if decoded != nil {
				*decoded = buf
			}
			return dst, nil
		case ch < 0x20:
			return nil, c.fail("control character in string")
		case ch == '\\':
			var err error
			if buf, err = c.escape(buf); err != nil {
				return nil, err
			}
		case ch < utf8.RuneSelf:
			buf = append(buf, ch)
			c.pos++
		default:
			r, size := utf8.DecodeRune(c.src[c.pos:])
			if r == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, c.src[c.pos:c.pos+size]...)
			}
			c.pos += size
		}
	}
}

// scratchString is a buffer for decoding a string that is not an object key.
func (c *canonicalizer) scratchString() []byte { return c.keys[len(c.keys):len(c.keys)] }

func (c *canonicalizer) escape(buf []byte) ([]byte, error) {
	if c.pos+1 >= len(c.src) {
		return nil, c.fail("unterminated escape")
	}
	e := c.src[c.pos+1]
	c.pos += 2
	switch e {
	case '"', '\\', '/':
		return append(buf, e), nil
	case 'b':
		return append(buf, '\b'), nil
	case 'f':
		return append(buf, '\f'), nil
	case 'n':
		return append(buf, '\n'), nil
	case 'r':
		return append(buf, '\r'), nil
	case 't':
		return append(buf, '\t'), nil
	case 'u':
		r, ok := c.hex4(c.pos)
		if !ok {
			return nil, c.fail("invalid \\u escape")
		}
		c.pos += 4
		if utf16.IsSurrogate(r) {
			if c.pos+1 < len(c.src) && c.src[c.pos] == '\\' && c.src[c.pos+1] == 'u' {
				if r2, ok := c.hex4(c.pos + 2); ok {
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						c.pos += 6
						return utf8.AppendRune(buf, d), nil
					}
				}
			}
			r = utf8.RuneError
		}
		return utf8.AppendRune(buf, r), nil
	}
	return nil, c.fail("invalid escape")
}

func (c *canonicalizer) hex4(at int) (rune, bool) {
	if at+4 > len(c.src) {
		return 0, false
	}
	var r rune
	for _, ch := range c.src[at : at+4] {
		switch {
		case ch >= '0' && ch <= '9':
			ch -= '0'
		case ch >= 'a' && ch <= 'f':
			ch = ch - 'a' + 10
		case ch >= 'A' && ch <= 'F':
			ch = ch - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(ch)
	}
	return r, true
}

// number copies a number as written after checking it against JSON's grammar.
func (c *canonicalizer) number(dst []byte) ([]byte, error) {
	end := jsonscan.Number(c.src, c.pos)
	if end < 0 {
		return nil, c.fail("invalid number")
	}
	dst = append(dst, c.src[c.pos:end]...)
	c.pos = end
	return dst, nil
}
