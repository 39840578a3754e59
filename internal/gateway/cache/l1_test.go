package cache

import (
	"bytes"
	"testing"
	"time"
)

func TestL1StoresLargeEnvelopesInParts(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Now()}
	l := newL1(1<<20, clk.Now) // parts of about 1Ki
	for _, n := range []int{0, 1, l.max - 64, l.max - 63, l.max, 5000, 64 << 10} {
		env := bytes.Repeat([]byte{envelopeV1, 2, 3}, n/3+1)[:max(n, 1)]
		l.set("k", env, time.Minute)
		got, ok := l.get("k")
		if !ok || !bytes.Equal(got, env) {
			t.Errorf("%d bytes: got %d bytes, ok %v", len(env), len(got), ok)
		}
	}
	var kb keyBuf
	has := func(part int) bool { _, err := l.fc.Get(kb.key("k", part)); return err == nil }
	if !has(1) || !has(60) {
		t.Fatalf("a 64Ki envelope under a 1Mi bound was not stored in parts")
	}
	l.del("k")
	if _, ok := l.get("k"); ok {
		t.Errorf("deleted entry still found")
	}
	if has(1) || has(60) {
		t.Errorf("del left parts behind")
	}
}

func TestL1MissingOrForeignPartIsAMiss(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Now()}
	l := newL1(1<<20, clk.Now)
	env := bytes.Repeat([]byte{envelopeV1}, 5000)
	var kb keyBuf

	l.set("k", env, time.Minute)
	l.fc.Del(kb.key("k", 2))
	if _, ok := l.get("k"); ok {
		t.Errorf("entry with a part evicted was found")
	}

	l.set("k", env, time.Minute)
	// 5000 bytes are parts of 988 and 996 bytes: the fifth holds the last 28.
	if err := l.fc.Set(kb.key("k", 5), make([]byte, 500), 60); err != nil {
		t.Fatal(err)
	}
	if _, ok := l.get("k"); ok {
		t.Errorf("entry with an oversized part was found")
	}

	if err := l.fc.Set(kb.key("k", 0), []byte{multipart, 0xff}, 60); err != nil { // a length that does not parse
		t.Fatal(err)
	}
	if _, ok := l.get("k"); ok {
		t.Errorf("entry with a broken head was found")
	}
}

func TestL1ExpiresOnTheCacheClock(t *testing.T) {
	t.Parallel()
	clk := &fakeClock{t: time.Now()}
	l := newL1(1<<20, clk.Now)
	l.set("short", []byte{envelopeV1}, 1500*time.Millisecond) // rounded up to 2s
	l.set("long", bytes.Repeat([]byte{envelopeV1}, 5000), time.Hour)
	clk.Add(time.Second)
	if _, ok := l.get("short"); !ok {
		t.Fatalf("entry gone before its life ended")
	}
	clk.Add(2 * time.Second)
	if _, ok := l.get("short"); ok {
		t.Errorf("entry outlived its life")
	}
	if _, ok := l.get("long"); !ok {
		t.Errorf("entry with an hour to live is gone")
	}
}
