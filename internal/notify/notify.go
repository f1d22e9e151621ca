// Package notify is a broadcast that a waiter can select on together with
// its context: the waits between ferry's parts (a flush, a unit routed, a
// command taken) are notified by the goroutine that made the change, not
// polled.
package notify

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Notifier wakes its waiters at each change. The zero value is ready.
//
// A waiter takes the channel first, then checks its condition, then waits:
// a change between the check and the wait has already closed the channel.
type Notifier struct {
	armed atomic.Bool // a waiter holds ch: Notify has work to do
	mu    sync.Mutex
	ch    chan struct{}
}

// Wait returns a channel closed by the next Notify.
func (n *Notifier) Wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
		n.armed.Store(true)
	}
	return n.ch
}

// Notify wakes every waiter. Called after the change it announces, it costs
// one atomic load when nobody waits (it is on the apply path): a waiter that
// arms after that load checks its condition after arming, and so sees the
// change.
func (n *Notifier) Notify() {
	if !n.armed.Load() {
		return
	}
	n.mu.Lock()
	n.armed.Store(false)
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
	n.mu.Unlock()
}

// Wait waits for changed or the end of ctx. A nil changed (nothing to wait
// on yet: no writer) waits a moment instead, so that no caller blocks for
// good on a state that has no owner to announce it.
func Wait(ctx context.Context, changed <-chan struct{}) {
	if changed == nil {
		t := time.NewTimer(10 * time.Millisecond)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		return
	}
	select {
	case <-ctx.Done():
	case <-changed:
	}
}
