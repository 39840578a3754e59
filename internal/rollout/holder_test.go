package rollout

import (
	"os"
	"os/exec"
	"testing"
)

func TestHolderGone(t *testing.T) {
	t.Parallel()
	host, _ := os.Hostname()
	me := Holder{Host: host, PID: os.Getpid()}.Stamped()
	if me.Started == 0 {
		t.Fatal("Stamped found no start time for this process")
	}
	if me.Gone() {
		t.Error("this process is gone")
	}
	reused := me
	reused.Started++
	if !reused.Gone() {
		t.Error("a holder whose pid now belongs to a process started at another time is not gone")
	}
	elsewhere := Holder{Host: host + "-other", PID: 1 << 30}
	if elsewhere.Gone() {
		t.Error("a holder on another host is gone")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if exited := (Holder{Host: host, PID: cmd.Process.Pid}); !exited.Gone() {
		t.Error("the holder of an exited process is not gone")
	}
}
