package cache

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// referenceCanonical is the straightforward canonicaliser over encoding/json that the
// single-pass one must agree with (FuzzCanonical compares them).
func referenceCanonical(dst, body []byte) ([]byte, error) {
	if len(bytes.Trim(body, " \t\r\n")) == 0 { // JSON whitespace only
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
	return refValue(dst, v), nil
}

func refValue(dst []byte, v any) []byte {
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
			dst = refValue(dst, e)
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
			dst = refValue(dst, v[k])
		}
		return append(dst, '}')
	}
	// The decoder produces only the types above.
	panic(fmt.Sprintf("cache: unexpected JSON value of type %T", v))
}
