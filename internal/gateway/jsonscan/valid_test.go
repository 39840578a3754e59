package jsonscan

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestValidAgreesWithEncodingJSON(t *testing.T) {
	for _, in := range validSeeds {
		if got, want := Valid([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("valid(%q) = %v, json.Valid says %v", in, got, want)
		}
	}
	deep := strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth)
	for _, in := range []string{deep, "[" + deep + "]", strings.Repeat(`{"a":`, MaxDepth) + "1" + strings.Repeat("}", MaxDepth)} {
		if got, want := Valid([]byte(in)), json.Valid([]byte(in)); got != want {
			t.Errorf("valid at depth %d = %v, json.Valid says %v", strings.Count(in, "[")+strings.Count(in, "{"), got, want)
		}
	}
}

var validSeeds = []string{
	`{"model":"m","messages":[{"role":"user","content":"hi \"there\" \u00e9\n"}],"max_tokens":16,"stream":true}`,
	` [1, -0.5e+3, 0, -0, 1E9, true, false, null, "", {}, []] `, `{}`, `[]`, `""`, `0`, `-`, `01`, `1.`, `.5`, `1e`, `1e+`,
	`{"a" : 1 , "b":[ ]}`, `{"a":1,}`, `[1,]`, `{,}`, `{"a"}`, `{"a":}`, `{1:2}`, `[1 2]`, `"\x"`, `"\u12"`, `"\u12G4"`,
	"\"a\x01b\"", "\"caf\xe9\"", `tru`, `nul`, `falsey`, `{"a":1}}`, `[[]`, ``, ` `, "\ufeff{}", `{"a":"\/"}`, "[1]\n", "\t{}\r\n",
}

// FuzzValid checks Valid against json.Valid on any input.
func FuzzValid(f *testing.F) {
	for _, s := range validSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Valid(b), json.Valid(b); got != want {
			t.Fatalf("valid(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValid(b *testing.B) {
	body := []byte(`{"model":"fake-model","messages":[{"role":"system","content":"` + strings.Repeat("You are a careful assistant. ", 700) + `"},{"role":"user","content":"question 1"}],"max_tokens":16}`)
	b.Run("valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			Valid(body)
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		for b.Loop() {
			json.Valid(body)
		}
	})
}
