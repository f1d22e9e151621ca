package job

import (
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/lease"
	"github.com/ferry-dev/ferry/resp"
)

// TestReopenGivesUp: a restarted attempt that cannot open its peers is
// tried again while the fault may pass; a migrate gives up at retry_timeout
// with the reason and the fix, and a fault no wait can mend ends it at once.
func TestReopenGivesUp(t *testing.T) {
	refused := &openError{syscall.ECONNREFUSED}
	t0 := time.Unix(1e9, 0)

	r := reopen{log: zerolog.Nop(), timeout: 10 * time.Second}
	var waits []time.Duration
	for _, at := range []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 9 * time.Second} {
		w, ok, err := r.failed(refused, t0.Add(at))
		if !ok || err != nil {
			t.Fatalf("at %s: gave up (%v)", at, err)
		}
		waits = append(waits, w)
	}
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 3 * time.Second, time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Errorf("waits %v, want %v (doubling to 5 s, the last one ending at retry_timeout)", waits, want)
			break
		}
	}
	_, ok, err := r.failed(refused, t0.Add(10*time.Second))
	if ok || !fault.IsPermanent(err) || !strings.Contains(err.Error(), "giving up (retry_timeout)") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("at retry_timeout: ok %v, %v", ok, err)
	}

	// A sync never gives up; an attempt that opened starts a new outage.
	r = reopen{log: zerolog.Nop()}
	for _, at := range []time.Duration{0, time.Hour, 48 * time.Hour} {
		if _, ok, err := r.failed(refused, t0.Add(at)); !ok {
			t.Fatalf("sync gave up at %s: %v", at, err)
		}
	}
	r.opened()
	if w, _, _ := r.failed(refused, t0.Add(49*time.Hour)); w != time.Second {
		t.Errorf("first wait of a new outage %s, want 1s", w)
	}

	for _, err := range []error{
		&openError{&resp.ReplyError{Msg: "WRONGPASS invalid username-password pair or user is disabled."}},
		&openError{&lease.HeldError{Key: "__ferry:default:lease"}},
		errors.New("a fault while running, after the peers opened"),
	} {
		if _, ok, got := r.failed(err, t0); ok || got != err {
			t.Errorf("%v: retried (%v, %v)", err, ok, got)
		}
	}
}
