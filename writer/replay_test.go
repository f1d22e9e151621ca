package writer

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ferry-dev/ferry/resp"
)

// idemBatch is testBatch with every command added by AddIdempotent, as a
// snapshot's keys are.
func idemBatch(stream int, pos uint64, ops ...testOp) *Batch {
	b := NewBatch()
	b.Stream = stream
	for _, o := range ops {
		err := b.AddIdempotent(o.db, o.slot, func(dst []byte) ([]byte, error) {
			return resp.AppendCommandStrings(dst, "SET", o.key, "v"), nil
		})
		if err != nil {
			panic(err)
		}
		b.EndUnit(Position{Seq: o.seq, State: StateLive, ReplID: "r", Offset: int64(10 * o.seq)})
	}
	b.Pos = Position{Seq: pos, State: StateLive, ReplID: "r", Offset: int64(100 * pos)}
	return b
}

// TestPlanIdempotent: a fenced writer sends a flight of idempotent
// commands only without transactions; one other command fences the whole
// flight as before, and so does on_error = skip.
func TestPlanIdempotent(t *testing.T) {
	slotMarker := func(slot int) string { return fmt.Sprintf("slot:%d", slot) }
	streamMarker := func(stream int) string { return fmt.Sprintf("stream:%d", stream) }
	cluster := func(onError ErrorPolicy) *planner {
		p := newPlanner(&Config{Slotted: true, Fence: true, OnError: onError, SlotMarker: slotMarker, StreamMarker: streamMarker})
		return &p
	}
	t.Run("cluster: in order, then each stream's position", func(t *testing.T) {
		f := planFlight([]*Batch{
			idemBatch(0, 2, cl(5, "a", 1), cl(7, "b", 2)),
			idemBatch(1, 3, cl(5, "c", 3)),
		}, cluster(Stop))
		if !f.replay {
			t.Error("not sent as a replay")
		}
		checkPlan(t, f, true,
			[]wantGroup{{"", 0, false, "0.0 0.1 1.0"}, {"stream:0", 2, false, ""}, {"stream:1", 3, false, ""}},
			set("a")+set("b")+set("c")+mark("stream:0", 2, 200, -1)+mark("stream:1", 3, 300, -1))
	})
	t.Run("cluster: one command that must run once fences the flight", func(t *testing.T) {
		f := planFlight([]*Batch{
			idemBatch(0, 1, cl(5, "a", 1)),
			testBatch(0, "", 2, cl(5, "b", 2)),
		}, cluster(Stop))
		if f.replay {
			t.Error("sent as a replay")
		}
		checkPlan(t, f, true, []wantGroup{{"slot:5", 2, true, "0.0 1.0"}},
			multi+set("a")+set("b")+mark("slot:5", 2, 20, -1)+exec)
	})
	t.Run("cluster: position updates alone are no replay", func(t *testing.T) {
		if f := planFlight([]*Batch{idemBatch(0, 4)}, cluster(Stop)); f.replay {
			t.Error("sent as a replay")
		}
	})
	t.Run("cluster: not under on_error = skip", func(t *testing.T) {
		f := planFlight([]*Batch{idemBatch(0, 1, cl(5, "a", 1))}, cluster(Skip))
		if f.replay || len(f.groups) != 1 || !f.groups[0].multi {
			t.Errorf("replay %v, groups %+v", f.replay, f.groups)
		}
	})
	t.Run("standalone: fenced as before", func(t *testing.T) {
		cfg := &Config{Fence: true, MarkerKey: "m"}
		p := newPlanner(cfg)
		f := planFlight([]*Batch{idemBatch(0, 2, sa(0, "a", 1), sa(0, "b", 2))}, &p)
		checkPlan(t, f, false, []wantGroup{{"m", 2, true, "0.0 0.1"}},
			multi+sel(0)+set("a")+set("b")+mark("m", 2, 200, -1)+exec)
	})
}

// TestLedgerReplayUnanswered: after a dropped connection an unfenced
// flight counts as applied only as far as its replies were read, whatever
// the markers say (one of its commands may have failed while the marker
// SET after it ran), and goes out again in order.
func TestLedgerReplayUnanswered(t *testing.T) {
	t.Run("cluster", func(t *testing.T) {
		tl := newTestLedger(true, false)
		tl.p.replay = true
		tl.submitAll(t, idemBatch(0, 3, cl(5, "a", 1), cl(7, "b", 2), cl(5, "c", 3)))
		if f := tl.send(t); !f.replay {
			t.Fatal("not sent as a replay")
		}
		nApplied, nBack, rw := tl.requeueAfterDrop(map[string]Position{"stream:0": {Seq: 3}})
		if rw != nil || nApplied != 0 || nBack != 2 {
			t.Fatalf("%d applied, %d replayed, %v; want 0, 2", nApplied, nBack, rw)
		}
		if got := tl.queued(); got != "[0@3: a/1 b/2 c/3]" {
			t.Errorf("queue after the drop %s", got)
		}
		tl.answer(tl.send(t))
		if p, _ := tl.appliedAt(0); p.Seq != 3 || tl.ops.Load() != 3 {
			t.Errorf("stream 0 at %d with %d commands acknowledged, want 3 and 3", p.Seq, tl.ops.Load())
		}
	})
}

// TestLedgerReplayHoldsFenced: while an unfenced flight is unanswered only
// idempotent commands and position updates follow it; a command that must
// run once waits for its replies.
func TestLedgerReplayHoldsFenced(t *testing.T) {
	tl := newTestLedger(true, false)
	tl.p.replay = true
	tl.submitAll(t, idemBatch(0, 1, cl(5, "a", 1)))
	first := tl.send(t)
	tl.submitAll(t, idemBatch(0, 2, cl(5, "b", 2)), idemBatch(1, 3))
	if f := tl.send(t); !f.replay || len(f.batches) != 2 {
		t.Fatalf("replay %v with %d batches; want the idempotent one and the position", f.replay, len(f.batches))
	}
	tl.submitAll(t, testBatch(0, "", 4, cl(5, "incr", 4)))
	if _, err := tl.takeNext(context.Background(), func() error { return errWouldWait }); !errors.Is(err, errWouldWait) {
		t.Fatalf("a fenced batch went out behind unanswered replays: %v", err)
	}
	tl.answer(first)
	if _, err := tl.takeNext(context.Background(), func() error { return errWouldWait }); !errors.Is(err, errWouldWait) {
		t.Fatalf("a fenced batch went out behind an unanswered replay: %v", err)
	}
	tl.answer(tl.head())
	if f := tl.send(t); f.replay || len(f.groups) != 1 || !f.groups[0].multi {
		t.Errorf("replay %v, groups %+v; want one transaction", f.replay, f.groups)
	}
	// After a drop the count starts again from nothing in flight.
	tl.requeueAfterDrop(map[string]Position{})
	if tl.replaying != 0 {
		t.Errorf("%d replays counted in flight after the drop", tl.replaying)
	}
}
