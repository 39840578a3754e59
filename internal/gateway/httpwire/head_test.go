package httpwire

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestHeadEnd(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		bare bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", 27, false},
		{"GET / HTTP/1.1\r\nHost: a\r\n", 0, false},
		{"GET / HTTP/1.1\nHost: a\n\n", 0, true},
		{"", 0, false},
	} {
		if n, bare := HeadEnd([]byte(tt.in)); n != tt.n || bare != tt.bare {
			t.Errorf("HeadEnd(%q) = %d, %v; want %d, %v", tt.in, n, bare, tt.n, tt.bare)
		}
	}
}

func TestParseFields(t *testing.T) {
	var seen []string
	h, ok := ParseFields("content-type:  a/b \r\nX-A:\t1 \t\r\nx-a: 2\r\nPragma: no-cache\r\n\r\n", func(k, v string) bool {
		seen = append(seen, k+"="+v)
		return true
	})
	want := http.Header{"Content-Type": {"a/b"}, "X-A": {"1", "2"}, "Pragma": {"no-cache"}, "Cache-Control": {"no-cache"}}
	if !ok || !reflect.DeepEqual(h, want) {
		t.Fatalf("got %v, %v", h, ok)
	}
	if len(seen) != 4 || seen[0] != "Content-Type=a/b" {
		t.Fatalf("field saw %v", seen)
	}
	for _, bad := range []string{"\nX-A: 1\r\n\r\n", "X-A: 1\nX-B: 2\r\n\r\n", "X-A: 1\r\n", " X-A: folded\r\n\r\n", "X A: 1\r\n\r\n", "X-A: a\x00b\r\n\r\n", ": v\r\n\r\n"} {
		if _, ok := ParseFields(bad, func(string, string) bool { return true }); ok {
			t.Errorf("ParseFields(%q) took it", bad)
		}
	}
	if _, ok := ParseFields("X-A: 1\r\n\r\n", func(string, string) bool { return false }); ok {
		t.Error("a refused field did not refuse the head")
	}
}

func TestParseLength(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "367": 367, "": -1, "+1": -1, "1 2": -1, "1234567890123456789": -1} {
		n, ok := ParseLength(in)
		if ok != (want >= 0) || ok && n != want {
			t.Errorf("ParseLength(%q) = %d, %v", in, n, ok)
		}
	}
}

// FuzzParseFields feeds any bytes: no panic, and a header it accepts has
// canonical keys and values without line breaks or surrounding whitespace.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{"A: 1\r\n\r\n", "\r\n", "X-A: 1\r\n", "a:\r\nb: c\r\n\r\n", "\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := ParseFields(s, func(string, string) bool { return true })
		if !ok {
			return
		}
		for k, vv := range h {
			if k != http.CanonicalHeaderKey(k) {
				t.Fatalf("key %q is not canonical", k)
			}
			for _, v := range vv {
				if strings.ContainsAny(v, "\r\n") {
					t.Fatalf("value %q holds a line break", v)
				}
				if v != strings.Trim(v, " \t") {
					t.Fatalf("value %q keeps optional whitespace", v)
				}
			}
		}
	})
}
