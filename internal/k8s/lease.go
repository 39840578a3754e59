package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/aideploy/aideploy/internal/rollout"
)

// DefaultLeaseDuration is how long a rollout Lease holds without renewal: a
// rollout killed on another host (a CI runner) blocks the next one for at
// most this long. The holder renews it every third of it.
const DefaultLeaseDuration = 60 * time.Second

// Lock takes the Lease <svc>-rollout and renews it until Unlock. A holder
// whose process is gone on this host, or whose Lease expired unrenewed, is
// replaced with a line saying so.
func (p *Platform) Lock(ctx context.Context, h rollout.Holder, force bool) error {
	leases := p.c.Clientset.CoordinationV1().Leases(p.c.Namespace)
	h = h.Stamped()
	b, _ := json.Marshal(h)
	id := fmt.Sprintf("%s/%d", h.Owner, h.PID)
	secs := int32(p.o.LeaseDuration.Round(time.Second) / time.Second)
	for attempt := 0; attempt < 5; attempt++ {
		now := metav1.NewMicroTime(p.now())
		l, err := leases.Get(ctx, p.lockName(), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: p.lockName(), Annotations: map[string]string{annotationHolder: string(b)}},
				Spec: coordinationv1.LeaseSpec{HolderIdentity: &id, AcquireTime: &now, RenewTime: &now, LeaseDurationSeconds: &secs}}
			if _, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: FieldManager}); apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("creating Lease %s: %w", p.lockName(), err)
			}
			p.renew(ctx, h)
			p.settle(ctx)
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading Lease %s: %w", p.lockName(), err)
		}
		if held, err := holderOf(l); held != nil {
			if err != nil && !force {
				return fmt.Errorf("reading the holder of Lease %s: %w; rerun with --force-unlock", p.lockName(), err)
			}
			if !(held.Host == h.Host && held.PID == h.PID) {
				why := ""
				switch expiry, ok := leaseExpiry(l); {
				case force:
					why = "--force-unlock"
				case held.Gone():
					why = "its process is gone"
				case ok && !now.Time.Before(expiry):
					why = fmt.Sprintf("its Lease expired at %s, unrenewed for %s", expiry.UTC().Format(time.RFC3339), now.Sub(l.Spec.RenewTime.Time).Round(time.Second))
				default:
					return &rollout.LockedError{Service: p.name, Holder: *held}
				}
				p.logf("taking over the rollout lock of %s (%s)", held, why)
			}
		}
		if l.Annotations == nil {
			l.Annotations = map[string]string{}
		}
		l.Annotations[annotationHolder] = string(b)
		l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = &id, &now, &now, &secs
		if _, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager}); apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("taking Lease %s: %w", p.lockName(), err)
		}
		p.renew(ctx, h)
		p.settle(ctx)
		return nil
	}
	return fmt.Errorf("taking Lease %s: it kept changing; try again", p.lockName())
}

// settle does, under the lock just taken, what waited for the next run:
// colours whose keep-warm window passed are scaled down. It only says when
// it cannot, the run itself does not depend on it.
func (p *Platform) settle(ctx context.Context) {
	if err := p.retireCooled(ctx); err != nil {
		p.logf("scaling down colours kept warm past their window: %v", err)
	}
}

// leaseExpiry is when l runs out unless renewed; ok is false for a Lease
// without a duration or renew time (written by an older aideploy), which
// never expires on its own.
func leaseExpiry(l *coordinationv1.Lease) (time.Time, bool) {
	if l.Spec.LeaseDurationSeconds == nil || l.Spec.RenewTime == nil {
		return time.Time{}, false
	}
	return l.Spec.RenewTime.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second), true
}

// holderOf returns who holds l, nil when nobody does; err is about the
// holder annotation, which may be unreadable while the Lease is held.
func holderOf(l *coordinationv1.Lease) (*rollout.Holder, error) {
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		return nil, nil
	}
	var h rollout.Holder
	return &h, json.Unmarshal([]byte(l.Annotations[annotationHolder]), &h)
}

// renew keeps the Lease of h fresh every third of its duration, until Unlock
// or ctx ends; it stops, saying so, when another holder took the Lease.
func (p *Platform) renew(ctx context.Context, h rollout.Holder) {
	p.stopRenewal()
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(max(p.o.LeaseDuration/3, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if err := p.renewOnce(ctx, h); err != nil {
				if ctx.Err() == nil {
					p.logf("renewing the rollout lock: %v", err)
				}
				if apierrors.IsNotFound(err) || isLost(err) {
					return
				}
			}
		}
	}()
	p.stopRenew = func() { cancel(); wg.Wait() }
}

// errLost says that another holder took the Lease.
type errLost struct{ by string }

func (e errLost) Error() string {
	return "the lock was taken over by " + e.by + "; this run no longer holds it"
}

func isLost(err error) bool { _, ok := err.(errLost); return ok }

func (p *Platform) renewOnce(ctx context.Context, h rollout.Holder) error {
	leases := p.c.Clientset.CoordinationV1().Leases(p.c.Namespace)
	l, err := leases.Get(ctx, p.lockName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	if held, _ := holderOf(l); held == nil || held.Host != h.Host || held.PID != h.PID {
		by := "nobody"
		if held != nil {
			by = held.String()
		}
		return errLost{by: by}
	}
	now := metav1.NewMicroTime(p.now())
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: FieldManager})
	return err
}

func (p *Platform) stopRenewal() {
	if p.stopRenew != nil {
		p.stopRenew()
		p.stopRenew = nil
	}
}

// Unlock stops renewing and deletes the Lease if h still holds it.
func (p *Platform) Unlock(ctx context.Context, h rollout.Holder) error {
	p.stopRenewal()
	leases := p.c.Clientset.CoordinationV1().Leases(p.c.Namespace)
	l, err := leases.Get(ctx, p.lockName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Lease %s: %w", p.lockName(), err)
	}
	var held rollout.Holder
	_ = json.Unmarshal([]byte(l.Annotations[annotationHolder]), &held)
	if held.PID != h.PID || held.Host != h.Host {
		return fmt.Errorf("the lock is now held by %s, not by this run", held)
	}
	rv := l.ResourceVersion
	err = leases.Delete(ctx, p.lockName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("releasing Lease %s: %w", p.lockName(), err)
	}
	return nil
}

func (p *Platform) now() time.Time {
	if p.o.Now != nil {
		return p.o.Now()
	}
	return time.Now()
}
