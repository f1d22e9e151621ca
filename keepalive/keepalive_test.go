package keepalive

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestInterval(t *testing.T) {
	for _, c := range []struct {
		timeout, fallback, want time.Duration
	}{
		{time.Second, 30 * time.Second, time.Second / 3},         // a third: two thirds left for the PING to arrive
		{2 * time.Second, 30 * time.Second, 2 * time.Second / 3}, //
		{300 * time.Second, 30 * time.Second, 30 * time.Second},  // capped for load balancers and NAT
		{0, 30 * time.Second, 30 * time.Second},                  // no timeout: the fallback still keeps middleboxes alive
		{-1, 10 * time.Second, 10 * time.Second},                 // unknown (CONFIG forbidden)
		{0, 0, Fallback},                                         //
		{time.Millisecond, time.Second, MinInterval},             // floor
	} {
		if got := Interval(c.timeout, c.fallback); got != c.want {
			t.Errorf("Interval(%v, %v) = %v, want %v", c.timeout, c.fallback, got, c.want)
		}
	}
}

type fakePinger struct {
	last  atomic.Int64 // unix ns of the last write
	pings atomic.Int64
}

func (f *fakePinger) PingIfIdle(idle time.Duration) error {
	if time.Since(time.Unix(0, f.last.Load())) >= idle {
		f.pings.Add(1)
		f.last.Store(time.Now().UnixNano())
	}
	return nil
}

// An idle connection is pinged about once per interval; a busy one never.
func TestRunPingsOnlyWhenIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	idle := &fakePinger{}
	busy := &fakePinger{}
	busy.last.Store(time.Now().UnixNano())
	go Run(ctx, idle, 200*time.Millisecond)
	go Run(ctx, busy, 200*time.Millisecond)
	stop := time.After(time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case <-stop:
			done = true
		case <-tick.C:
			busy.last.Store(time.Now().UnixNano()) // it keeps writing
		}
	}
	if n := idle.pings.Load(); n < 4 || n > 7 {
		t.Errorf("idle connection pinged %d times in 1 s at a 200 ms interval", n)
	}
	if n := busy.pings.Load(); n != 0 {
		t.Errorf("busy connection pinged %d times", n)
	}
}
