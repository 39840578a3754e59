package gateway

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadBody(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 10000)
	for _, tt := range []struct {
		name           string
		body           string
		announced      int64
		limit          int64
		wantErr        error
		wantCapAtMost  int
		oneByteAtATime bool
	}{
		{"announced exactly", long, 10000, 1 << 20, nil, 10001, false},
		{"unknown length", long, -1, 1 << 20, nil, 16 << 10, false},
		{"trickled", long, 10000, 1 << 20, nil, 10001, true},
		{"announced more than sent", "{}", 8_000_000, 8 << 20, nil, firstBodyBuf, false},
		{"past the limit", long, -1, 9999, errTooLarge, 0, false},
		{"exactly the limit", long, -1, 10000, nil, 10001, false},
		{"empty", "", 0, 100, nil, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var r io.Reader = strings.NewReader(tt.body)
			if tt.oneByteAtATime {
				r = iotest.OneByteReader(r)
			}
			got, err := readBody(r, tt.announced, tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(got, []byte(tt.body)) {
				t.Fatalf("read %d bytes, want %d", len(got), len(tt.body))
			}
			if cap(got) > tt.wantCapAtMost {
				t.Errorf("buffer cap %d, want at most %d", cap(got), tt.wantCapAtMost)
			}
		})
	}
}

func TestReadBodyPassesReadErrors(t *testing.T) {
	t.Parallel()
	cut := errors.New("cut")
	if _, err := readBody(iotest.ErrReader(cut), 10, 100); !errors.Is(err, cut) {
		t.Fatalf("err = %v, want the reader's", err)
	}
}
