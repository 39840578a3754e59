package gateway

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"

	"github.com/aideploy/aideploy/internal/gateway/openai"
)

// credentialHeaders are the request headers that model servers and hosted
// endpoints check a caller by (vLLM's --api-key, Azure's api-key,
// Anthropic-style x-api-key, cookies of a proxy in front of the model).
var credentialHeaders = []string{"Authorization", "Api-Key", "X-Api-Key", "Cookie"}

// credentials returns a hash of the credentials a request carries that the
// gateway did not check itself, "" when there are none. It becomes part of
// the cache key, so an answer goes only to a caller who presented the same
// credentials: the model server's own check is never stepped around, and a
// caller with a key is not slowed by its absence elsewhere. A hash keyed by
// credentials was chosen over not caching them: with gateway auth off, the
// model server's key is how most deployments are protected, and its callers
// are the ones whose repeats the cache is for. The hash is one-way, and the
// cache key hashes it again; no credential is ever stored.
func credentials(x *exchange) string {
	var h [sha256.Size]byte
	sum, found := sha256.New(), false
	for _, name := range credentialHeaders {
		if name == "Authorization" && x.key != nil {
			continue // the gateway's own key, checked: the tenant stands for it
		}
		vs := x.r.Header[name]
		if len(vs) == 0 {
			continue
		}
		found = true
		var n [binary.MaxVarintLen64]byte
		sum.Write(n[:binary.PutUvarint(n[:], uint64(len(name)))])
		sum.Write([]byte(name))
		sum.Write(n[:binary.PutUvarint(n[:], uint64(len(vs)))])
		for _, v := range vs {
			sum.Write(n[:binary.PutUvarint(n[:], uint64(len(v)))])
			sum.Write([]byte(v))
		}
	}
	if !found {
		return ""
	}
	return hex.EncodeToString(sum.Sum(h[:0]))
}

// samples says whether a route's answers can be drawn at random: the
// completion routes, not embeddings, which are the same on every call.
func samples(route string) bool {
	return route == openai.RouteChat || route == openai.RouteCompletions
}
