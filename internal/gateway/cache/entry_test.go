package cache

import (
	"bytes"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEntryRoundTrip(t *testing.T) {
	t.Parallel()
	stored := time.Date(2026, 11, 29, 21, 0, 0, 123, time.UTC)
	tests := []struct {
		name string
		e    Entry
	}{
		{"json", Entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"id":"x"}`), StoredAt: stored, TTL: time.Hour}},
		{"stream", Entry{Status: 200, Header: http.Header{"Content-Type": {"text/event-stream"}, "X-Multi": {"a", "", "b"}}, Body: []byte("data: {}\n\ndata: [DONE]\n\n"), Stream: true, StoredAt: stored, TTL: time.Minute}},
		{"empty", Entry{Status: 204, StoredAt: stored}},
		{"large body", Entry{Status: 201, Body: bytes.Repeat([]byte("x"), 1<<20), StoredAt: stored, TTL: time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Decode(tt.e.AppendEncode(nil))
			if err != nil {
				t.Fatalf("Decode(AppendEncode(nil)): %v", err)
			}
			if got.Status != tt.e.Status || got.Stream != tt.e.Stream || got.TTL != tt.e.TTL ||
				!got.StoredAt.Equal(tt.e.StoredAt) || !bytes.Equal(got.Body, tt.e.Body) ||
				(len(tt.e.Header) > 0 || len(got.Header) > 0) && !reflect.DeepEqual(got.Header, tt.e.Header) {
				t.Errorf("round trip changed the entry:\n got %+v\nwant %+v", got, tt.e)
			}
		})
	}
}

func TestDecodeCorrupt(t *testing.T) {
	t.Parallel()
	good := Entry{Status: 200, Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(`{"a":1}`), StoredAt: time.Now(), TTL: time.Hour}.AppendEncode(nil)
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 0x40
	tests := map[string][]byte{
		"empty":         nil,
		"version only":  {envelopeV1},
		"truncated":     good[:len(good)-1],
		"bit flip":      flipped,
		"extra byte":    append(bytes.Clone(good), 0),
		"garbage":       []byte(strings.Repeat("\x01\xff", 40)),
		"gob-like text": []byte("\x01not an envelope at all, just text"),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := Decode(data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("Decode = %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("unknown version", func(t *testing.T) {
		t.Parallel()
		v2 := bytes.Clone(good)
		v2[0] = 2
		if _, err := Decode(v2); err == nil || !strings.Contains(err.Error(), "version 2") {
			t.Errorf("Decode = %v, want an unknown version error", err)
		}
	})
}

// TestDecodeEveryTruncation checks that no prefix of a valid envelope decodes or panics.
func TestDecodeEveryTruncation(t *testing.T) {
	t.Parallel()
	good := Entry{Status: 200, Header: http.Header{"A": {"1", "2"}, "B": {"3"}}, Body: []byte("body"), Stream: true}.AppendEncode(nil)
	for i := range len(good) {
		if _, err := Decode(good[:i]); err == nil {
			t.Errorf("Decode of %d of %d bytes succeeded", i, len(good))
		}
	}
}

func TestKeepHeaders(t *testing.T) {
	t.Parallel()
	h := http.Header{
		"Content-Type":     {"text/event-stream"},
		"Content-Encoding": {"gzip"},
		"X-Request-Id":     {"abc"},
		"Date":             {"now"},
		"Ratelimit-Limit":  {"100"},
		"X-Model-Version":  {"v2"},
	}
	got := KeepHeaders(h, "x-model-version")
	want := http.Header{"Content-Type": {"text/event-stream"}, "Content-Encoding": {"gzip"}, "X-Model-Version": {"v2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("KeepHeaders = %v, want %v", got, want)
	}
	got["Content-Type"][0] = "changed"
	if h.Get("Content-Type") != "text/event-stream" {
		t.Errorf("KeepHeaders shares value slices with its input")
	}
}
