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

	const batches = 3000
	want := map[string]int{}
	var seq uint64
	offs := [2]int64{}
	for i := range batches {
		stream := i % 7 / 5 // runs of batches of stream 0, then stream 1
		b := NewBatch()
		b.Stream = stream
		b.MarkerKey = fmt.Sprintf("__ferry:test:pos:%d", stream)
		for k := range 1 + i%3 {
			key := fmt.Sprintf("c:%d:%d", stream, (i+k)%50)
			b.Add(0, []byte("INCR"), []byte(key))
			want[key]++
			seq++
			offs[stream] += 10
			b.EndUnit(seq, offs[stream])
		}
		b.Pos = Position{Seq: seq, State: StateLive, ReplID: "0123456789012345678901234567890123456789", Offset: offs[stream], Low: -1}
		if err := w.Submit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
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
		if err != nil || got != n {
			t.Errorf("%s = %d (%v), want %d", key, got, err, n)
		}
	}
	st := w.Stats()
	t.Logf("%d batches in %d groups, %d reconnects, %d kills", st.Batches, st.Groups, st.Reconnects, killed)
	if st.Batches != batches {
		t.Errorf("%d batches acknowledged, want %d", st.Batches, batches)
	}
	if st.Groups >= st.Batches {
		t.Errorf("%d groups for %d batches: nothing coalesced", st.Groups, st.Batches)
	}
	cancel()
	<-done
}

// TestStandalonePlanGroups: a standalone flight's batches form one group
// per run of one stream's batches whose positions grow; the group records
// its last batch's position. A batch of another stream, or one recording
// an earlier position (Confirm re-records the last acknowledged one),
// starts a group of its own.
func TestStandalonePlanGroups(t *testing.T) {
	p := &planner{marker: "m", fence: true}
	batch := func(stream int, seq uint64, ops int) *Batch {
		b := NewBatch()
		b.Stream = stream
		b.MarkerKey = fmt.Sprintf("m:%d", stream)
		for i := range ops {
			b.Add(0, []byte("INCR"), []byte(fmt.Sprint(i)))
		}
		b.EndUnit(seq, int64(seq))
		b.Pos = Position{Seq: seq, State: StateLive, ReplID: "r", Offset: int64(seq)}
		return b
	}
	bs := []*Batch{batch(0, 10, 2), batch(0, 11, 1), batch(0, 12, 0), batch(1, 13, 1), batch(0, 14, 1), batch(0, 9, 0), batch(0, 15, 1)}
	f := planFlight(bs, p)
	type want struct {
		marker string
		seq    uint64
		ops    int
		multi  bool
	}
	// The batch at seq 9 records an earlier position than the one before
	// it: it starts a new group (with 15), so that the group of 14 records
	// 14, not 9.
	wants := []want{{"m:0", 12, 3, true}, {"m:1", 13, 1, true}, {"m:0", 14, 1, true}, {"m:0", 15, 1, true}}
	if len(f.groups) != len(wants) {
		t.Fatalf("%d groups, want %d", len(f.groups), len(wants))
	}
	for i, w := range wants {
		g := f.groups[i]
		if g.marker != w.marker || g.seq != w.seq || len(g.ops) != w.ops || g.multi != w.multi {
			t.Errorf("group %d: marker %s seq %d ops %d multi %v, want %+v", i, g.marker, g.seq, len(g.ops), g.multi, w)
		}
	}
	if b := f.groups[3].ops[0].b; bs[b].Pos.Seq != 15 {
		t.Errorf("the last group's command is from the batch at seq %d", bs[b].Pos.Seq)
	}
}
