package notify

import (
	"context"
	"testing"
	"time"
)

// A waiter that took the channel before a change is woken by it; one that
// takes it after waits for the next.
func TestNotifier(t *testing.T) {
	var n Notifier
	n.Notify() // nobody waits: nothing to do
	ch := n.Wait()
	select {
	case <-ch:
		t.Fatal("woken before any change")
	default:
	}
	n.Notify()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("not woken by Notify")
	}
	next := n.Wait()
	select {
	case <-next:
		t.Fatal("a new wait was woken by an earlier change")
	default:
	}
}

// Wait returns at the end of its context.
func TestWaitContext(t *testing.T) {
	var n Notifier
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Wait(ctx, n.Wait()); close(done) }()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Wait ignored its context")
	}
}
