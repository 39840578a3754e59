package cache

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/coocood/freecache"
)

// l1 is the in-process tier. freecache keeps every envelope inside 256
// pointer-free ring buffers allocated once, so a full L1 is a handful of
// objects the garbage collector marks in microseconds; one heap object per
// entry (otter, golang-lru) made each collection of a full 256 MiB L1 cost
// 150-250 ms of CPU, taken from the requests in flight.
//
// freecache evicts in write order but gives an entry read since the
// segment's average access time a second pass (near-LRU), expires entries
// by TTL, and never holds more than its size in keys, values and 24-byte
// entry headers.
//
// freecache takes at most 1/1024 of its size under one key, so a larger
// envelope is stored in parts: the first under the key itself, marked by a
// leading byte no envelope starts with and followed by the total length,
// the rest under derived keys. A missing or mismatched part makes the
// whole entry a miss; Decode's checksum catches parts of two writes mixed.
type l1 struct {
	fc   *freecache.Cache
	max  int // the largest key plus value freecache takes
	size int // the bytes it is bounded by
}

// multipart marks the first part of an envelope stored in parts. Envelopes
// start with their version, which is small.
const multipart = 0xff

// errPart reports a part that does not fit the entry it should belong to.
var errPart = errors.New("cache: L1 entry part does not match")

// clock adapts the cache's clock to freecache's, so that entries expire on
// the same time that freshness is judged by (tests move it).
type clock func() time.Time

func (c clock) Now() uint32 { return uint32(c().Unix()) }

func newL1(size int, now func() time.Time) *l1 {
	// freecache's own floor is 512 KiB; config validation keeps sizes above it.
	return &l1{
		fc:   freecache.NewCacheCustomTimer(size, clock(now)),
		max:  size/1024 - 24, // segments are size/256, each takes a quarter less its header
		size: size,
	}
}

// keyBuf holds a key on the stack: cache keys are 64 hex digits, and a
// part's key adds three bytes.
type keyBuf [80]byte

func (b *keyBuf) key(key string, part int) []byte {
	if part == 0 {
		return append(b[:0], key...)
	}
	return append(append(b[:0], multipart, byte(part>>8), byte(part)), key...)
}

// set stores env under key for life (rounded up to whole seconds, at least one).
// An envelope too large for 65535 parts is not stored.
func (l *l1) set(key string, env []byte, life time.Duration) {
	secs := max(int((life+time.Second-1)/time.Second), 1)
	var kb keyBuf
	k := kb.key(key, 0)
	if len(k)+len(env) <= l.max {
		_ = l.fc.Set(k, env, secs) // only ErrLargeKey/ErrLargeEntry, ruled out above
		return
	}
	first := l.max - len(k) - 1 - binary.MaxVarintLen64
	rest := l.max - len(k) - 3
	if first <= 0 || rest <= 0 || (len(env)-first+rest-1)/rest > 0xffff {
		return
	}
	head := make([]byte, 0, 1+binary.MaxVarintLen64+first)
	head = binary.AppendUvarint(append(head, multipart), uint64(len(env)))
	if l.fc.Set(k, append(head, env[:first]...), secs) != nil {
		return
	}
	for part, off := 1, first; off < len(env); part, off = part+1, off+rest {
		if l.fc.Set(kb.key(key, part), env[off:min(off+rest, len(env))], secs) != nil {
			l.del(key)
			return
		}
	}
}

// get returns a copy of the envelope stored under key.
func (l *l1) get(key string) ([]byte, bool) {
	var kb keyBuf
	var env []byte
	want := 0
	err := l.fc.GetFn(kb.key(key, 0), func(v []byte) error {
		if len(v) == 0 || v[0] != multipart {
			env = append([]byte(nil), v...)
			want = len(env)
			return nil
		}
		total, n := binary.Uvarint(v[1:])
		if n <= 0 || total > uint64(l.size) || uint64(len(v)-1-n) > total {
			return errPart
		}
		want = int(total)
		env = append(make([]byte, 0, want), v[1+n:]...)
		return nil
	})
	for part := 1; err == nil && len(env) < want && part <= 0xffff; part++ {
		err = l.fc.GetFn(kb.key(key, part), func(v []byte) error {
			if len(v) > want-len(env) {
				return errPart
			}
			env = append(env, v...)
			return nil
		})
	}
	return env, err == nil && len(env) == want
}

// del removes the entry under key and its parts.
func (l *l1) del(key string) {
	var kb keyBuf
	for part := 0; part <= 0xffff; part++ {
		if !l.fc.Del(kb.key(key, part)) && part > 0 {
			return
		}
	}
}
