package cache

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"sorted keys", `{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{"nested and whitespace", "{ \"z\" : [ 1 , {\"y\":true,\"x\":null} ],\n\"a\":\"s\" }", `{"a":"s","z":[1,{"x":null,"y":true}]}`},
		{"numbers kept as written", `{"t":0.70,"n":1e2,"big":12345678901234567890123}`, `{"big":12345678901234567890123,"n":1e2,"t":0.70}`},
		{"escapes normalised", `{"s":"\u0041\/<>&\u00e9\n"}`, "{\"s\":\"A/<>&\u00e9\\n\"}"},
		{"control characters", `"\u0001\t"`, `"\u0001\t"`},
		{"scalar", ` 42 `, `42`},
		{"empty body", "  ", ``},
		{"duplicate key keeps last", `{"a":1,"b":0,"a":2}`, `{"a":2,"b":0}`},
		{"surrogate pair", `"\ud83d\ude00"`, "\"\U0001F600\""},
		{"lone surrogate", `"\ud83dx"`, "\"\uFFFDx\""},
		{"invalid UTF-8", "\"a\xffb\"", "\"a\uFFFDb\""},
		{"escaped key order", `{"\u0062":1,"a\"":2,"a":3}`, `{"a":3,"a\"":2,"b":1}`},
		{"empty containers", `{"a":{},"b":[]}`, `{"a":{},"b":[]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Canonical([]byte(tt.in))
			if err != nil {
				t.Fatalf("Canonical(%q): %v", tt.in, err)
			}
			if string(got) != tt.want {
				t.Errorf("Canonical(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestCanonicalRejectsInvalidJSON(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{`, `{"a":}`, `{"a":1}{"b":2}`, `{"a":1} x`, `[1,]`, "\"a\x01\"", `nul`,
		`01`, `1.`, `-`, `1e`, `"\x"`, `"\u12"`, `{"a" 1}`, `{1:2}`, `[1 2]`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001)} {
		if got, err := Canonical([]byte(in)); err == nil {
			t.Errorf("Canonical(%q) = %q, want an error", in, got)
		}
		if _, err := Key("t", "POST", "/v1/chat/completions", "m", []byte(in)); err == nil {
			t.Errorf("Key with body %q: want an error", in)
		}
	}
}

func TestKey(t *testing.T) {
	t.Parallel()
	body := []byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0}`)
	reordered := []byte(`{ "temperature":0, "messages":[{"content":"hi","role":"user"}], "model":"m" }`)
	base := must(Key("alice", "POST", "/v1/chat/completions", "m", body))
	if len(base) != 64 {
		t.Fatalf("key %q is not 64 hex digits", base)
	}
	if got := must(Key("alice", "POST", "/v1/chat/completions", "m", reordered)); got != base {
		t.Errorf("reordered body gives key %s, want %s", got, base)
	}
	differ := map[string]string{
		"other tenant":   must(Key("bob", "POST", "/v1/chat/completions", "m", body)),
		"shared":         must(Key("", "POST", "/v1/chat/completions", "m", body)),
		"other method":   must(Key("alice", "PUT", "/v1/chat/completions", "m", body)),
		"other route":    must(Key("alice", "POST", "/v1/completions", "m", body)),
		"other model":    must(Key("alice", "POST", "/v1/chat/completions", "m2", body)),
		"other body":     must(Key("alice", "POST", "/v1/chat/completions", "m", []byte(`{"model":"m"}`))),
		"framing moved":  must(Key("alic", "ePOST", "/v1/chat/completions", "m", body)),
		"number written": must(Key("alice", "POST", "/v1/chat/completions", "m", bytes.Replace(body, []byte(`:0}`), []byte(`:0.0}`), 1))),
	}
	seen := map[string]string{base: "base"}
	for name, k := range differ {
		if prev, ok := seen[k]; ok {
			t.Errorf("%s gives the same key as %s", name, prev)
		}
		seen[k] = name
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// reformat writes v with keys in reverse order, random whitespace and escaped non-ASCII,
// i.e. a different text of the same JSON value.
func reformat(b *strings.Builder, v any, r *rand.Rand) {
	ws := func() {
		b.WriteString([]string{"", " ", "\n", "\t ", "  "}[r.IntN(5)])
	}
	ws()
	switch v := v.(type) {
	case map[string]any:
		b.WriteByte('{')
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k) // HTML-escaped, unlike Canonical
			ws()
			b.Write(kb)
			ws()
			b.WriteByte(':')
			reformat(b, v[k], r)
		}
		ws()
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			reformat(b, e, r)
		}
		b.WriteByte(']')
	default:
		vb, _ := json.Marshal(v)
		b.Write(vb)
	}
	ws()
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":64}`,
		`{"b":1,"a":[1,2,{"d":null,"c":false}],"e":"\u00e9<>&\\\"\n"}`,
		`[1.50,-0,1e-7,12345678901234567890]`,
		`"\ud83d\ude00 emoji"`,
		`{"a":{"a":{"a":{}}}}`,
		` `, `{`, `nul`, "{\"\xff\":1}",
	} {
		f.Add([]byte(s), uint64(1))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		canon, err := Canonical(body)
		ref, refErr := referenceCanonical(nil, body)
		if (err == nil) != (refErr == nil) || !bytes.Equal(canon, ref) {
			t.Fatalf("Canonical(%q) = %q, %v; the encoding/json reference gives %q, %v", body, canon, err, ref, refErr)
		}
		if err != nil {
			if json.Valid(body) {
				t.Fatalf("Canonical rejects valid JSON %q: %v", body, err)
			}
			return
		}
		again, err := Canonical(canon)
		if err != nil || !bytes.Equal(again, canon) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%v)", body, canon, again, err)
		}
		if len(canon) > 0 && !json.Valid(canon) {
			t.Fatalf("Canonical(%q) = %q is not valid JSON", body, canon)
		}
		if len(canon) == 0 {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("decoding %q: %v", body, err)
		}
		var b strings.Builder
		reformat(&b, v, rand.New(rand.NewPCG(seed, seed>>1)))
		other, err := Canonical([]byte(b.String()))
		if err != nil || !bytes.Equal(other, canon) {
			t.Fatalf("same value, different text:\n%q -> %q\n%q -> %q (%v)", body, canon, b.String(), other, err)
		}
	})
}
