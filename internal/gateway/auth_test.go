package gateway

import "testing"

func TestAuthenticateSchemeIsCaseInsensitive(t *testing.T) {
	t.Parallel()
	keys := parseKeys([]Key{{Name: "acme", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"}}) // foo
	for _, tt := range []struct {
		header string
		want   bool
	}{
		{"Bearer foo", true},
		{"bearer foo", true},
		{"BEARER foo", true},
		{"Bearer  foo", true},
		{"Bearer bar", false},
		{"Basic foo", false},
		{"Bearerfoo", false},
		{"Bearer ", false},
		{"foo", false},
	} {
		k, ok := authenticate(keys, tt.header)
		if ok != tt.want || ok && k.tenant != "acme" {
			t.Errorf("authenticate(%q) = %v, %v; want %v", tt.header, k, ok, tt.want)
		}
	}
}
