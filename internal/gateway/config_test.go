package gateway

import "testing"

func TestRedactURLHidesPasswords(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"redis://127.0.0.1:6379/0":         "redis://127.0.0.1:6379/0",
		"redis://:s3cret@127.0.0.1:6379/0": "redis://:xxxxx@127.0.0.1:6379/0",
		"rediss://user:s3cret@host:6380/1": "rediss://user:xxxxx@host:6380/1",
		":s3cret@localhost:6379":           "xxxxx@localhost:6379",
		"localhost:6379":                   "localhost:6379",
		"redis://user@127.0.0.1:6379/0":    "redis://user@127.0.0.1:6379/0",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

// A tenant name goes into the sha256 error's command only when a shell
// would take it as it is.
func TestShellSafe(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"team-a": true, "acme.eu_1": true, "": false, "a b": false, "it's": false,
		"$(rm)": false, "a;b": false, "hi!": false, "{a,b}": false, "x\ny": false,
	} {
		if got := shellSafe(s); got != want {
			t.Errorf("shellSafe(%q) = %v, want %v", s, got, want)
		}
	}
}
