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
