package front

import (
	"context"
	"testing"
	"time"
)

func TestReqCtxCancels(t *testing.T) {
	c := &reqCtx{}
	done := c.Done()
	if c.Err() != nil {
		t.Fatal("a new context has an error")
	}
	hooked := make(chan struct{})
	if !c.Hook(func() { close(hooked) }) {
		t.Fatal("Hook refused an empty slot")
	}
	if c.Hook(func() {}) {
		t.Fatal("Hook took a second function")
	}
	after := make(chan struct{})
	c.AfterFunc(func() { close(after) })
	dropped := c.AfterFunc(func() { t.Error("a stopped AfterFunc ran") })
	if !dropped() {
		t.Fatal("stop of a pending AfterFunc said false")
	}
	child, cancelChild := context.WithTimeout(c, time.Hour)
	defer cancelChild()
	c.cancel()
	c.cancel() // idempotent
	for name, ch := range map[string]<-chan struct{}{"Done": done, "hook": hooked, "AfterFunc": after, "child": child.Done()} {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("%s did not fire on cancel", name)
		}
	}
	if c.Err() != context.Canceled || child.Err() != context.Canceled {
		t.Fatalf("Err %v, child %v", c.Err(), child.Err())
	}
	if c.Unhook() {
		t.Fatal("Unhook after the hook ran said true")
	}
	if _, ok := c.Deadline(); ok {
		t.Fatal("a deadline appeared")
	}
}

func TestReqCtxHookAfterEndRunsAtOnce(t *testing.T) {
	c := &reqCtx{}
	c.cancel()
	ran := false
	if !c.Hook(func() { ran = true }) || !ran {
		t.Fatal("a hook on an ended context must run at once")
	}
	select {
	case <-c.Done():
	default:
		t.Fatal("Done of an ended context is open")
	}
	// Unhooked before the end: never runs.
	c = &reqCtx{}
	c.Hook(func() { t.Error("an unhooked function ran") })
	if !c.Unhook() {
		t.Fatal("Unhook of a pending hook said false")
	}
	c.cancel()
}
