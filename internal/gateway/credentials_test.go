package gateway

import (
	"net/http"
	"testing"
)

func TestCredentialsPartOfTheKey(t *testing.T) {
	t.Parallel()
	cred := func(key *apiKey, hdr ...string) string {
		r, _ := http.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return credentials(&exchange{r: r, key: key})
	}
	if cred(nil) != "" {
		t.Fatal("a request without credentials has a credentials hash")
	}
	seen := map[string]string{}
	for name, c := range map[string]string{
		"bearer a":  cred(nil, "Authorization", "Bearer a"),
		"bearer b":  cred(nil, "Authorization", "Bearer b"),
		"api-key a": cred(nil, "api-key", "a"),
		"x-api-key": cred(nil, "x-api-key", "a"),
		"cookie":    cred(nil, "Cookie", "s=a"),
		"two keys":  cred(nil, "api-key", "a", "x-api-key", "a"),
	} {
		if c == "" {
			t.Errorf("%s: no hash", name)
		}
		if other, ok := seen[c]; ok {
			t.Errorf("%s and %s hash alike", name, other)
		}
		seen[c] = name
	}
	// With gateway auth the tenant stands for the gateway's own key.
	if got := cred(&apiKey{tenant: "acme"}, "Authorization", "Bearer a"); got != "" {
		t.Errorf("the gateway's checked key is in the hash: %q", got)
	}
	if got := cred(&apiKey{tenant: "acme"}, "Authorization", "Bearer a", "api-key", "up"); got == "" || got != cred(&apiKey{tenant: "acme"}, "Authorization", "Bearer b", "api-key", "up") {
		t.Errorf("with gateway auth, the model server's api-key must key alone: %q", got)
	}
}
