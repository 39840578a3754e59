package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"strings"
)

// anonymous is the tenant of every request when auth is off.
const anonymous = "anonymous"

type apiKey struct {
	tenant string
	sum    [sha256.Size]byte
}

func parseKeys(keys []Key) []apiKey {
	out := make([]apiKey, 0, len(keys))
	for _, k := range keys {
		b, err := hex.DecodeString(k.SHA256)
		if err != nil || len(b) != sha256.Size {
			continue // Validate reports it
		}
		ak := apiKey{tenant: k.Name}
		copy(ak.sum[:], b)
		out = append(out, ak)
	}
	return out
}

// authenticate returns the key of the bearer token in the Authorization header.
// Every configured key is compared in constant time, so timing tells nothing
// about which key nearly matched.
func authenticate(keys []apiKey, header string) (*apiKey, bool) {
	token, ok := bearerToken(header)
	if !ok {
		return nil, false
	}
	sum := sha256.Sum256([]byte(token))
	var found *apiKey
	for i := range keys {
		if subtle.ConstantTimeCompare(sum[:], keys[i].sum[:]) == 1 {
			found = &keys[i]
		}
	}
	return found, found != nil
}

// bearerToken returns the token of an Authorization header's Bearer
// credential. The scheme is case-insensitive (RFC 9110 11.1): "bearer" and
// "BEARER" are the same key, as clients and other servers treat them.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimLeft(token, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false
	}
	return token, true
}
