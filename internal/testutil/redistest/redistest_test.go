package redistest

import "testing"

func TestIntegrationRedisStartKillRestart(t *testing.T) {
	s := New(t)
	if err := ping(s.Addr); err != nil {
		t.Fatalf("fresh server: %v", err)
	}
	s.Kill()
	if err := ping(s.Addr); err == nil {
		t.Fatalf("server still answers after Kill")
	}
	s.Restart()
	if err := ping(s.Addr); err != nil {
		t.Fatalf("restarted server: %v", err)
	}
	s.Stop()
	s.Stop()
	if err := ping(s.Addr); err == nil {
		t.Fatalf("server still answers after Stop")
	}
}
