package writer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestStandaloneCoalescesExactlyOnce submits many small batches of INCRs
// (not idempotent) to a standalone writer, two streams with their own
// markers, while its connection is killed again and again: the batches
// queued behind an outstanding flight go out together (fewer groups than
// batches), and every INCR is applied exactly once.
func TestStandaloneCoalescesExactlyOnce(t *testing.T) {
	st := incrsUnderKills(t, 3000, func(i int) int { return 1 + i%3 })
	if st.Groups >= st.Batches {
		t.Errorf("%d groups for %d batches: nothing coalesced", st.Groups, st.Batches)
	}
}

// TestStandaloneCutsExactlyOnce: the same with batches of up to 300 INCRs,
// which go out as several transactions each (txnOps): a connection killed
// between two of them leaves a batch partly applied, and its rest is sent
// again, once.
func TestStandaloneCutsExactlyOnce(t *testing.T) {
	st := incrsUnderKills(t, 400, func(i int) int { return 1 + i*37%300 })
	if st.Groups <= st.Batches {
		t.Errorf("%d groups for %d batches: no batch was cut", st.Groups, st.Batches)
	}
}

// TestFoldedCutsExactlyOnce: the same with LPUSHes marked foldable, two
// in a row to each key, so that a run would cross a transaction cut if
// fold let it: every push applied once.
func TestFoldedCutsExactlyOnce(t *testing.T) {
	st := commandsUnderKills(t, 1500, func(i int) int { return 1 + i*37%300 }, true)
	if st.Reconnects == 0 {
		t.Errorf("no connection was killed")
	}
}

// incrsUnderKills submits batches of size(i) INCRs, and returns the
// writer's stats once every INCR is checked applied exactly once.
func incrsUnderKills(t *testing.T, batches int, size func(i int) int) Stats {
	return commandsUnderKills(t, batches, size, false)
}

// commandsUnderKills is incrsUnderKills, or with pushes set LPUSHes marked
// foldable (two in a row to each key), checked by the lists' lengths.
func commandsUnderKills(t *testing.T, batches int, size func(i int) int, pushes bool) Stats {
	t.Helper()
	redistest.Require(t)
	srv := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := New(Config{
		Name:      "ferry-coalesce-test",
		Dial:      dial.Options{Addr: srv.Addr},
		MarkerKey: "__ferry:test:pos",
		Fence:     true,
		Log:       zerolog.Nop(),
	})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	cl := srv.Client(t)
	killed := 0
	stopKill := make(chan struct{})
	killDone := make(chan struct{})
	go func() {
		defer close(killDone)
		for {
			select {
			case <-stopKill:
				return
			case <-time.After(5 * time.Millisecond):
			}
			list, err := cl.ClientList(ctx).Result()
			if err != nil {
				continue
			}
			for _, line := range strings.Split(list, "\n") {
				if !strings.Contains(line, "name=ferry-coalesce-test") {
					continue
				}
				for _, f := range strings.Fields(line) {
					if id, ok := strings.CutPrefix(f, "id="); ok {
						if _, err := strconv.ParseInt(id, 10, 64); err == nil && cl.ClientKillByFilter(ctx, "ID", id).Err() == nil {
							killed++
						}
					}
				}
			}
		}
	}()

	want := map[string]int{}
	var seq uint64
	offs := [2]int64{}
	for i := range batches {
		stream := i % 7 / 5 // runs of batches of stream 0, then stream 1
		b := NewBatch()
		b.Stream = stream
		b.MarkerKey = fmt.Sprintf("__ferry:test:pos:%d", stream)
		for k := range size(i) {
			key := fmt.Sprintf("c:%d:%d", stream, (i+k)%50)
			if pushes {
				key = fmt.Sprintf("l:%d:%d", stream, (i+k/2)%50)
				b.Add(0, []byte("LPUSH"), []byte(key), []byte("x"))
				markFold(b, "LPUSH", key, "x")
			} else {
				b.Add(0, []byte("INCR"), []byte(key))
			}
			want[key]++
			seq++
			offs[stream] += 10
			b.EndUnit(Position{Seq: seq, State: StateLive, ReplID: replID, Offset: offs[stream], Low: -1})
		}
		b.Pos = Position{Seq: seq, State: StateLive, ReplID: replID, Offset: offs[stream], Low: -1}
		if err := w.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i%max(1, batches/100) == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	close(stopKill)
	<-killDone
	dctx, dcancel := context.WithTimeout(ctx, 60*time.Second)
	defer dcancel()
	if err := w.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	for key, n := range want {
		got, err := cl.Get(ctx, key).Int()
		if pushes {
			got, err = int(cl.LLen(ctx, key).Val()), nil
		}
		if err != nil || got != n {
			t.Errorf("%s = %d (%v), want %d", key, got, err, n)
		}
	}
	st := w.Stats()
	t.Logf("%d batches in %d groups, %d reconnects, %d kills", st.Batches, st.Groups, st.Reconnects, killed)
	if st.Batches != int64(batches) {
		t.Errorf("%d batches acknowledged, want %d", st.Batches, batches)
	}
	cancel()
	<-done
	return st
}

const replID = "0123456789012345678901234567890123456789"
