package writer

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestStaleConnectionNotAppliedTwice: a fenced flight of INCRs is held on
// the way to the server (a stalled link), the writer gives up on the
// connection (IOTimeout), reconnects, finds the marker without it and
// replays it. When the held bytes then reach the server on the old
// connection, they must not run: the counter moves once.
func TestStaleConnectionNotAppliedTwice(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	px := redistest.NewProxy(t, srv.Addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(Config{
		Name:      "ferry-stale-test",
		Dial:      dial.Options{Addr: px.Addr},
		MarkerKey: "__ferry:test:pos",
		Fence:     true,
		IOTimeout: 500 * time.Millisecond,
		Log:       zerolog.Nop(),
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	submit := func(seq uint64) {
		b := NewBatch()
		b.Add(0, []byte("INCR"), []byte("counter"))
		b.EndUnit(Position{Seq: seq, Offset: int64(seq)})
		b.Pos = Position{Seq: seq, State: StateLive, ReplID: "0123456789012345678901234567890123456789", Offset: int64(seq), Low: -1}
		if err := w.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		for {
			changed := w.Changed()
			if p, ok := w.Applied(0); ok && p.Seq >= seq {
				return
			}
			select {
			case <-changed:
			case <-wctx.Done():
				t.Fatalf("unit %d not acknowledged: %v", seq, w.Err())
			}
		}
	}
	submit(1)
	px.Stall() // the connection now open holds what the writer sends next
	submit(2)  // given up after IOTimeout, replayed on a new connection
	px.Resume()
	cl := srv.Client(t)
	// The held bytes are on their way to the server on the old connection;
	// a counter of 3 would show them applied there after the replay.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if n, _ := cl.Get(ctx, "counter").Int(); n != 2 {
			t.Fatalf("counter = %d after two INCR units, want 2 (the flight held on the old connection ran too)", n)
		}
		cl.Ping(ctx) // one round trip between reads, not a sleep
	}
	if px.HeldBytes() == 0 {
		t.Fatal("the stalled link held nothing: the test did not stall the flight")
	}
	cancel()
	<-done
}
