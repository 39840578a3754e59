package upstream

import "math/rand/v2"

// maxMirrors bounds the mirrored requests in flight in one pool: a shadow
// that slows down fills it, and the requests mirrored after that are dropped
// rather than piling up goroutines and connections.
const maxMirrors = 64

// MirrorShare says whether to mirror one request: the shadow's percent of them.
func (p *Pool) MirrorShare() bool {
	sh := p.shadow.Load()
	return sh != nil && sh.Percent > 0 && rand.IntN(100) < sh.Percent
}

// AcquireMirror leases a target of the shadow group for a mirrored request,
// never waiting: when the group is at its limit, has no usable target, or
// maxMirrors are in flight, the mirror is dropped (counted in the group's
// Dropped) and ok is false. A mirrored lease counts in its target's and its
// group's figures, not in the pool's, which are the clients' traffic.
func (p *Pool) AcquireMirror() (l Lease, ok bool) {
	sh := p.shadow.Load()
	if sh == nil {
		return Lease{}, false
	}
	if p.mirrors.Add(1) > maxMirrors {
		p.mirrors.Add(-1)
		p.countGroup(sh.Group, true, false, true, false)
		return Lease{}, false
	}
	l, err := p.scan(p.targetsOf(false, sh.Group), nil)
	if err != nil {
		p.mirrors.Add(-1)
		p.countGroup(sh.Group, true, false, true, false)
		return Lease{}, false
	}
	l.mirror, l.sel = true, Selection{grouped: true, Group: sh.Group}
	return l, true
}

// Mirror is whether the lease carries a mirrored request.
func (l Lease) Mirror() bool { return l.mirror }
