// Package httpwire holds the pieces of HTTP/1.1 head parsing that the
// gateway's two fast paths share: the front server's request heads and the
// upstream client's answer heads. Both take only what net/http would read
// the same way and leave everything else to net/http; their fuzz tests
// check that.
package httpwire
