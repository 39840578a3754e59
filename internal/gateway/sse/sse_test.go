package sse

import (
	"bytes"
	"reflect"
	"testing"
)

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []Event
	}{
		{"one", "data: a\n\n", []Event{{Data: []byte("a")}}},
		{"multi-line data", "data: a\ndata: b\n\n", []Event{{Data: []byte("a\nb")}}},
		{"named", "event: error\ndata: {}\n\n", []Event{{Name: "error", Data: []byte("{}")}}},
		{"crlf", "data: a\r\n\r\ndata: b\r\rdata: c\n\n", []Event{{Data: []byte("a")}, {Data: []byte("b")}, {Data: []byte("c")}}},
		{"comment and no space", ": ping\ndata:x\n\n", []Event{{Data: []byte("x")}}},
		{"unfinished event is not dispatched", "data: a\n\ndata: b\n", []Event{{Data: []byte("a")}}},
		{"no data no event", "event: x\n\n", nil},
		{"id", "id: 7\ndata: a\n\n", []Event{{ID: "7", Data: []byte("a")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Parse([]byte(tt.in)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestWriteErrorParses(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	if err := WriteError(&b, "upstream_error", "cut\nshort"); err != nil {
		t.Fatal(err)
	}
	evs := Parse(b.Bytes())
	if len(evs) != 1 || evs[0].Name != "error" || !bytes.Contains(evs[0].Data, []byte("upstream_error")) {
		t.Fatalf("got %+v from %q", evs, b.String())
	}
}

// FuzzParse checks that any split of the input yields the same events as the whole.
func FuzzParse(f *testing.F) {
	f.Add([]byte("data: a\n\n"), 3)
	f.Add([]byte("event: x\r\ndata: b\r\n\r\n"), 9)
	f.Add([]byte("data: {\"usage\":1}\n\ndata: [DONE]\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, split int) {
		whole := Parse(in)
		if split < 0 {
			split = -split
		}
		if len(in) > 0 {
			split %= len(in) + 1
		} else {
			split = 0
		}
		var s Scanner
		var parts []Event
		emit := func(e Event) {
			e.Data = bytes.Clone(e.Data)
			parts = append(parts, e)
		}
		s.Feed(in[:split], emit)
		s.Feed(in[split:], emit)
		if len(whole) != len(parts) {
			t.Fatalf("whole gave %d events, split at %d gave %d", len(whole), split, len(parts))
		}
		for i := range whole {
			if whole[i].Name != parts[i].Name || !bytes.Equal(whole[i].Data, parts[i].Data) {
				t.Fatalf("event %d differs: %+v vs %+v", i, whole[i], parts[i])
			}
		}
	})
}
