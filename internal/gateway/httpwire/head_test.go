package httpwire

import (
	"net/http"
	"reflect"
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
	h, ok := ParseFields("content-type:  a/b \r\nX-A: 1\r\nx-a: 2\r\nPragma: no-cache\r\n\r\n", func(k, v string) bool {
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
	for _, bad := range []string{" X-A: folded\r\n\r\n", "X A: 1\r\n\r\n", "X-A: a\x00b\r\n\r\n", ": v\r\n\r\n"} {
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
