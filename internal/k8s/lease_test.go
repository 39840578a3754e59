package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/aideploy/aideploy/internal/config"
	"github.com/aideploy/aideploy/internal/rollout"
)

// leasePlatform is a platform on a fake clientset (unit test: the Lease logic
// alone; the integration tests run it against a real API server) whose log
// lines are kept.
type leasePlatform struct {
	*Platform
	mu    sync.Mutex
	lines []string
}

func newLeasePlatform(t *testing.T, d time.Duration, objs ...*coordinationv1.Lease) *leasePlatform {
	t.Helper()
	cs := fake.NewClientset()
	for _, l := range objs {
		if _, err := cs.CoordinationV1().Leases("ns").Create(context.Background(), l, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	lp := &leasePlatform{}
	lp.Platform = NewPlatform(&Client{Namespace: "ns", Clientset: cs}, Options{Config: &config.Config{Name: "chat"}, LeaseDuration: d,
		Logf: func(format string, args ...any) {
			lp.mu.Lock()
			defer lp.mu.Unlock()
			lp.lines = append(lp.lines, fmt.Sprintf(format, args...))
		}})
	t.Cleanup(lp.stopRenewal)
	return lp
}

// foreign is a Lease held by a rollout on another host, last renewed ago.
func foreign(t *testing.T, ago time.Duration, secs *int32) *coordinationv1.Lease {
	t.Helper()
	h := rollout.Holder{Owner: "ci@runner-7", Host: "runner-7", PID: 4242, Op: rollout.OpRollout, Image: "model:v2", Since: time.Now().Add(-ago)}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	id := "ci@runner-7/4242"
	renewed := metav1.NewMicroTime(time.Now().Add(-ago))
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "chat-rollout", Annotations: map[string]string{annotationHolder: string(b)}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, RenewTime: &renewed, AcquireTime: &renewed, LeaseDurationSeconds: secs}}
}

func me() rollout.Holder {
	return rollout.Holder{Owner: "ana@box", Host: "box-of-ana", PID: 99, Op: rollout.OpRollout}
}

func TestLockTakesOverOnlyAnExpiredLease(t *testing.T) {
	t.Parallel()
	sixty := int32(60)
	tests := []struct {
		name     string
		lease    *coordinationv1.Lease
		wantErr  bool   // a *rollout.LockedError
		wantLine string // in the log when taken over
	}{
		{"free", nil, false, ""},
		{"held, renewed 10s ago", foreign(t, 10*time.Second, &sixty), true, ""},
		{"expired: renewed 5m ago", foreign(t, 5*time.Minute, &sixty), false, "taking over the rollout lock of ci@runner-7 (pid 4242, rollout of model:v2"},
		{"no duration: an older aideploy's Lease", foreign(t, 5*time.Minute, nil), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var seed []*coordinationv1.Lease
			if tt.lease != nil {
				seed = append(seed, tt.lease)
			}
			p := newLeasePlatform(t, time.Minute, seed...)
			err := p.Lock(context.Background(), me(), false)
			var le *rollout.LockedError
			if tt.wantErr != errors.As(err, &le) {
				t.Fatalf("Lock: %v, want locked %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			l, err := p.c.Clientset.CoordinationV1().Leases("ns").Get(context.Background(), "chat-rollout", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if l.Spec.LeaseDurationSeconds == nil || *l.Spec.LeaseDurationSeconds != 60 || *l.Spec.HolderIdentity != "ana@box/99" {
				t.Errorf("Lease after Lock: holder %v duration %v", *l.Spec.HolderIdentity, l.Spec.LeaseDurationSeconds)
			}
			got := strings.Join(p.lines, "\n")
			if tt.wantLine == "" && got != "" || !strings.Contains(got, tt.wantLine) || tt.wantLine != "" && !strings.Contains(got, "its Lease expired at") {
				t.Errorf("log %q, want %q and the expiry", got, tt.wantLine)
			}
		})
	}
}

// TestLockIsRenewed: the holder keeps its Lease fresh while it runs, and
// stops when it is released.
func TestLockIsRenewed(t *testing.T) {
	t.Parallel()
	p := newLeasePlatform(t, 60*time.Millisecond)
	ctx := context.Background()
	if err := p.Lock(ctx, me(), false); err != nil {
		t.Fatal(err)
	}
	leases := p.c.Clientset.CoordinationV1().Leases("ns")
	first, err := leases.Get(ctx, "chat-rollout", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := leases.Get(ctx, "chat-rollout", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if l.Spec.RenewTime.After(first.Spec.RenewTime.Time) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Lease not renewed within 5s (duration 60ms): renew time still %s", l.Spec.RenewTime)
		}
		<-time.After(10 * time.Millisecond)
	}
	if err := p.Unlock(ctx, me()); err != nil {
		t.Fatal(err)
	}
	if p.stopRenew != nil {
		t.Error("renewal still running after Unlock")
	}
}

// TestPrewarmRoleIsNamespaced: the prewarm CronJobs' Role asks only for
// namespaced resources, which a Role can grant; nodes it cannot.
func TestPrewarmRoleIsNamespaced(t *testing.T) {
	t.Parallel()
	clusterScoped := map[string]bool{"nodes": true, "namespaces": true, "persistentvolumes": true, "clusterroles": true}
	_, _, objs := prewarmRBAC("chat")
	for _, o := range objs {
		if o["kind"] != "Role" {
			continue
		}
		for _, r := range o["rules"].([]any) {
			for _, res := range r.(map[string]any)["resources"].([]any) {
				if clusterScoped[res.(string)] {
					t.Errorf("the prewarm Role asks for %s, which is cluster-scoped", res)
				}
			}
		}
		return
	}
	t.Fatal("no Role rendered")
}
