package writer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// testLedger is a ledger as New makes it, standalone (marker "m") or for a
// cluster master, with the planner of its flights.
type testLedger struct {
	*ledger
	p       *planner
	skipped []string // onSkip's calls
	arms    []bool   // arm's calls
}

func newTestLedger(slotted, skipFenced bool) *testLedger {
	tl := &testLedger{p: &planner{slotted: slotted, fence: true, split: !slotted && !skipFenced, marker: "m",
		slotMarker:   func(slot int) string { return fmt.Sprintf("slot:%d", slot) },
		streamMarker: func(stream int) string { return fmt.Sprintf("stream:%d", stream) }}}
	tl.ledger = newLedger(ledgerConfig{slotted: slotted, skipFenced: skipFenced, marker: "m", maxQueued: 1 << 20,
		limits: sendLimits{slotted: slotted, oneByOne: skipFenced, maxSendOps: 200000, maxInflight: 1 << 20},
		onSkip: func(what, why string) { tl.skipped = append(tl.skipped, what+": "+why) },
	}, nil)
	return tl
}

func (tl *testLedger) arm(outstanding bool) { tl.arms = append(tl.arms, outstanding) }

var errWouldWait = errors.New("takeNext would wait")

// send takes the next flight off the queue as the sender does, plans it and
// puts it in flight. A takeNext that would wait fails the test.
func (tl *testLedger) send(t *testing.T) *flight {
	t.Helper()
	bs, err := tl.takeNext(context.Background(), func() error { return errWouldWait })
	if err != nil {
		t.Fatalf("takeNext: %v", err)
	}
	f := planFlight(bs, tl.p)
	c := wire{slotted: tl.p.slotted}
	c.layout(f)
	if err := tl.push(f, tl.arm); err != nil {
		t.Fatalf("push: %v", err)
	}
	return f
}

func (tl *testLedger) submitAll(t *testing.T, bs ...*Batch) {
	t.Helper()
	for _, b := range bs {
		if err := tl.submit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// answer marks every group of f applied, as the reply reader does when
// every EXEC succeeded, and acknowledges f.
func (tl *testLedger) answer(f *flight) {
	for i := range f.groups {
		f.groups[i].status = statusApplied
	}
	tl.acknowledge(f, true, tl.arm)
}

// queued describes the queue: per batch its stream, position and commands.
func (tl *testLedger) queued() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var s []string
	var size int64
	for _, b := range tl.queue {
		d := fmt.Sprintf("%d@%d:", b.Stream, b.Pos.Seq)
		for i := range b.ops {
			args := Op{Enc: b.op(i)}.Args()
			d += fmt.Sprintf(" %s/%d", args[1], b.ops[i].seq)
		}
		s = append(s, d)
		size += int64(b.Size())
	}
	if size != tl.queuedBytes {
		s = append(s, fmt.Sprintf("queuedBytes %d, want %d", tl.queuedBytes, size))
	}
	return fmt.Sprint(s)
}

func TestLedgerAcknowledge(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 2, sa(0, "a", 1), sa(0, "b", 2)), testBatch(0, "", 3, sa(0, "c", 3)), testBatch(1, "n", 4, sa(0, "d", 4)))
	f := tl.send(t)
	if len(f.batches) != 3 || tl.queued() != "[]" {
		t.Fatalf("took %d batches, left %s", len(f.batches), tl.queued())
	}
	if !tl.pending(0) || !tl.pending(1) {
		t.Error("batches in flight are not pending")
	}
	if _, ok := tl.appliedAt(0); ok {
		t.Error("a position before any acknowledgement")
	}
	tl.acknowledge(&flight{}, true, tl.arm) // not the head: ignored
	if tl.idle() {
		t.Fatal("a flight that is not the head was acknowledged")
	}
	tl.answer(f)
	if !tl.idle() || tl.pending(0) || tl.pending(1) {
		t.Error("acknowledged batches still pending")
	}
	if p, ok := tl.appliedAt(0); !ok || p.Seq != 3 || p.Offset != 300 {
		t.Errorf("stream 0 applied at %+v %v, want seq 3 offset 300", p, ok)
	}
	if p, key, ok := tl.lastApplied(1); !ok || p.Seq != 4 || key != "n" {
		t.Errorf("stream 1 applied at %+v under %q", p, key)
	}
	if fmt.Sprint(tl.acked) != "map[m:3 n:4]" {
		t.Errorf("acked %v", tl.acked)
	}
	if tl.batches.Load() != 3 || tl.ops.Load() != 4 || tl.groups.Load() != 2 {
		t.Errorf("counted %d batches, %d ops, %d groups", tl.batches.Load(), tl.ops.Load(), tl.groups.Load())
	}
	// The read deadline is armed by the first flight and cleared by the last.
	if fmt.Sprint(tl.arms) != "[true false]" {
		t.Errorf("arm calls %v", tl.arms)
	}
	if q, inf := tl.sizes(); q != 0 || inf != 0 {
		t.Errorf("%d bytes queued and %d in flight after the acknowledgement", q, inf)
	}
	if err := tl.drain(context.Background()); err != nil {
		t.Error(err)
	}
}

// TestLedgerInOrder: flights are acknowledged in the order they were sent;
// the deadline stays armed while any is outstanding.
func TestLedgerInOrder(t *testing.T) {
	tl := newTestLedger(true, false)
	tl.submitAll(t, testBatch(0, "", 1, cl(5, "a", 1)))
	f1 := tl.send(t)
	tl.submitAll(t, testBatch(0, "", 2, cl(5, "b", 2)))
	f2 := tl.send(t)
	if tl.head() != f1 {
		t.Fatal("the head is not the first flight")
	}
	tl.answer(f1)
	if tl.head() != f2 {
		t.Fatal("the head is not the second flight")
	}
	if p, _ := tl.appliedAt(0); p.Seq != 1 || tl.acked["slot:5"] != 1 {
		t.Errorf("after the first flight: applied %d, slot 5 acknowledged at %d", p.Seq, tl.acked["slot:5"])
	}
	tl.answer(f2)
	if p, _ := tl.appliedAt(0); p.Seq != 2 || tl.acked["slot:5"] != 2 {
		t.Errorf("after the second flight: applied %d, slot 5 acknowledged at %d", p.Seq, tl.acked["slot:5"])
	}
	if fmt.Sprint(tl.arms) != "[true true false]" {
		t.Errorf("arm calls %v", tl.arms)
	}
}

// TestLedgerHole: after a refusal, a flight whose groups did not all run is
// retired without recording anything as applied.
func TestLedgerHole(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 1, sa(0, "a", 1)))
	f := tl.send(t)
	tl.acknowledge(f, false, tl.arm)
	if !tl.idle() {
		t.Error("the flight is still in flight")
	}
	if _, ok := tl.appliedAt(0); ok || tl.batches.Load() != 0 || len(tl.acked) != 0 {
		t.Errorf("a flight with a hole was acknowledged: %v %d", tl.acked, tl.batches.Load())
	}
}

// TestLedgerRedirect: commands sent back for routing are handed to the job,
// the rest of their batch is acknowledged, and the stream's offset stays
// below theirs until they are applied elsewhere or here.
func TestLedgerRedirect(t *testing.T) {
	tl := newTestLedger(true, false)
	tl.submitAll(t, testBatch(0, "", 3, cl(5, "a", 1), cl(7, "b", 2), cl(5, "c", 3)))
	f := tl.send(t)
	if f.groups[1].marker != "slot:7" {
		t.Fatalf("groups %+v", f.groups)
	}
	tl.redirect(f, &f.groups[1], []int{0})
	if f.groups[1].status != statusRedirected {
		t.Error("a group all of whose commands were redirected is not marked so")
	}
	f.groups[0].status = statusApplied
	tl.acknowledge(f, true, tl.arm)

	ops := tl.redirectedOps()
	if len(ops) != 1 || string(ops[0].Args()[1]) != "b" || ops[0].Slot != 7 || ops[0].Seq != 2 || ops[0].Off != 20 || ops[0].Stream != 0 {
		t.Fatalf("redirected %+v", ops)
	}
	if _, ok := tl.acked["slot:7"]; ok || tl.acked["slot:5"] != 3 {
		t.Errorf("acked %v: want slot 5 at 3, slot 7 not at all", tl.acked)
	}
	if p, ok := tl.appliedAt(0); !ok || p.Seq != 3 || p.Offset != 19 {
		t.Errorf("applied %+v: want seq 3, offset below the redirected command's (20)", p)
	}

	// The job takes them and routes them back here (the slot came back).
	tl.dropRedirected(len(ops))
	if len(tl.redirectedOps()) != 0 {
		t.Error("redirected commands not dropped")
	}
	b := NewBatch()
	b.AddOp(ops[0])
	b.Stream, b.Pos = ops[0].Stream, ops[0].Pos
	b.Pos.Seq, b.Pos.Offset = ops[0].Seq, ops[0].Off
	tl.submitAll(t, testBatch(0, "", 4, cl(9, "d", 4)))
	tl.inject(b)
	if got := tl.queued(); got != "[0@2: b/2 0@4: d/4]" {
		t.Errorf("queue %s: the injected batch goes first", got)
	}
	if p, _ := tl.appliedAt(0); p.Offset != 19 {
		t.Errorf("offset %d while the injected command is not applied", p.Offset)
	}
	tl.answer(tl.send(t))
	// The injected batch does not move the stream's position back to its
	// own; the batch after it does move it forward.
	if p, _ := tl.appliedAt(0); p.Seq != 4 || p.Offset != 400 {
		t.Errorf("applied %+v after the injected batch, want seq 4 offset 400", p)
	}
	if len(tl.injected) != 0 {
		t.Error("the injected batch is still marked")
	}
}

// TestLedgerPartialRedirect: a group only some of whose commands were
// redirected stays to be acknowledged.
func TestLedgerPartialRedirect(t *testing.T) {
	tl := newTestLedger(true, false)
	tl.submitAll(t, testBatch(0, "", 2, cl(5, "a", 1), cl(5, "b", 2)))
	f := tl.send(t)
	tl.redirect(f, &f.groups[0], []int{1})
	if f.groups[0].status != statusPending {
		t.Errorf("status %v after redirecting one command of two", f.groups[0].status)
	}
	if ops := tl.redirectedOps(); len(ops) != 1 || string(ops[0].Args()[1]) != "b" {
		t.Errorf("redirected %+v", ops)
	}
}

// TestLedgerReplayAfterDrop: after a drop the markers tell which groups in
// flight the target applied; those are acknowledged, the rest goes back to
// the head of the queue in the order it was sent, ahead of what was queued,
// each command once.
func TestLedgerReplayAfterDrop(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t,
		testBatch(0, "", 2, sa(0, "a", 1), sa(0, "b", 2)),
		testBatch(0, "", 3, sa(0, "c", 3)),
		testBatch(1, "n", 4, sa(0, "d", 4)),
		testBatch(0, "", 5, sa(0, "e", 5)))
	f1 := tl.send(t)
	if len(f1.groups) != 3 {
		t.Fatalf("%d groups, want 3", len(f1.groups))
	}
	tl.submitAll(t, testBatch(0, "", 6, sa(0, "f", 6)))
	tl.cfg.limits.oneByOne = true // pipelined behind f1, as under a throttle
	tl.send(t)
	tl.cfg.limits.oneByOne = false
	tl.submitAll(t, testBatch(0, "", 7, sa(0, "g", 7)))

	// The target applied the first group (m at 3), not the second (n is
	// absent): nothing after it ran either.
	keys := tl.markerKeys()
	if fmt.Sprint(keys) != "[m n]" {
		t.Errorf("marker keys %v", keys)
	}
	nApplied, nBack, rw := tl.requeueAfterDrop(map[string]Position{"m": {Seq: 3}})
	if rw != nil {
		t.Fatal(rw)
	}
	if nApplied != 1 || nBack != 3 {
		t.Errorf("%d groups applied, %d replayed; want 1, 3", nApplied, nBack)
	}
	if got := tl.queued(); got != "[1@4: d/4 0@5: e/5 0@6: f/6 0@7: g/7]" {
		t.Errorf("queue after the drop %s", got)
	}
	if p, ok := tl.appliedAt(0); !ok || p.Seq != 3 {
		t.Errorf("stream 0 applied at %+v, want 3", p)
	}
	if !tl.idle() || tl.inflightBytes != 0 {
		t.Error("flights still in flight after the drop")
	}
	if tl.batches.Load() != 2 {
		t.Errorf("%d batches acknowledged, want 2", tl.batches.Load())
	}

	// Sent again and answered: everything applied once.
	tl.answer(tl.send(t))
	if p, _ := tl.appliedAt(0); p.Seq != 7 {
		t.Errorf("stream 0 at %d, want 7", p.Seq)
	}
	if p, _ := tl.appliedAt(1); p.Seq != 4 {
		t.Errorf("stream 1 at %d, want 4", p.Seq)
	}
	if tl.batches.Load() != 6 || tl.ops.Load() != 7 {
		t.Errorf("%d batches and %d commands acknowledged, want 6 and 7", tl.batches.Load(), tl.ops.Load())
	}
}

// TestLedgerReplayPrefix: groups run in the order they were sent, so a
// group whose marker is not there ends what counts as applied, whatever
// later markers say.
func TestLedgerReplayPrefix(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "m:0", 1, sa(0, "a", 1)), testBatch(1, "m:1", 2, sa(0, "b", 2)))
	tl.send(t)
	nApplied, nBack, rw := tl.requeueAfterDrop(map[string]Position{"m:1": {Seq: 2}})
	if rw != nil || nApplied != 0 || nBack != 2 {
		t.Errorf("%d applied, %d replayed, %v; want 0, 2", nApplied, nBack, rw)
	}
	if got := tl.queued(); got != "[0@1: a/1 1@2: b/2]" {
		t.Errorf("queue %s", got)
	}
}

// TestLedgerReplayCut: a batch cut into transactions whose connection
// drops after the first of them ran goes back without that transaction's
// commands, and the batch is acknowledged once, when the rest has run.
func TestLedgerReplayCut(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 150, units(1, 150)...))
	f := tl.send(t)
	if len(f.groups) != 3 {
		t.Fatalf("%d groups, want 3", len(f.groups))
	}
	nApplied, nBack, rw := tl.requeueAfterDrop(map[string]Position{"m": {Seq: 64}})
	if rw != nil || nApplied != 1 || nBack != 2 {
		t.Fatalf("%d applied, %d replayed, %v; want 1, 2", nApplied, nBack, rw)
	}
	if tl.batches.Load() != 0 {
		t.Errorf("%d batches acknowledged with 86 commands still to run", tl.batches.Load())
	}
	q := tl.queued()
	if !strings.HasPrefix(q, "[0@150: k65/65 k66/66 ") || strings.Contains(q, "k64/") || !strings.HasSuffix(q, " k150/150]") {
		t.Errorf("queue after the drop %s", q)
	}
	tl.answer(tl.send(t))
	if p, _ := tl.appliedAt(0); p.Seq != 150 {
		t.Errorf("stream 0 at %d, want 150", p.Seq)
	}
	if tl.batches.Load() != 1 || tl.ops.Load() != 150 {
		t.Errorf("%d batches and %d commands acknowledged, want 1 and 150", tl.batches.Load(), tl.ops.Load())
	}
}

// TestLedgerReplayCluster: a batch split over slots is requeued without the
// commands of the groups that were applied or redirected.
func TestLedgerReplayCluster(t *testing.T) {
	tl := newTestLedger(true, false)
	tl.submitAll(t, testBatch(0, "", 4, cl(5, "a", 1), cl(7, "b", 2), cl(5, "c", 3), cl(9, "d", 4)))
	f := tl.send(t)
	tl.redirect(f, &f.groups[2], []int{0}) // slot 9: moved
	// slot 5 ran, slot 7 did not.
	nApplied, nBack, rw := tl.requeueAfterDrop(map[string]Position{"slot:5": {Seq: 3}})
	if rw != nil || nApplied != 1 || nBack != 1 {
		t.Errorf("%d applied, %d replayed, %v; want 1, 1", nApplied, nBack, rw)
	}
	if got := tl.queued(); got != "[0@4: b/2]" {
		t.Errorf("queue %s, want only b", got)
	}
	if tl.acked["slot:5"] != 3 {
		t.Errorf("acked %v", tl.acked)
	}
	if _, ok := tl.appliedAt(0); ok {
		t.Error("a partly applied batch moved the position")
	}
	if ops := tl.redirectedOps(); len(ops) != 1 || string(ops[0].Args()[1]) != "d" {
		t.Errorf("redirected %+v", ops)
	}
}

// TestLedgerRewound: a target whose marker is behind what it acknowledged
// (or gone, standalone) has lost writes.
func TestLedgerRewound(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 3, sa(0, "a", 3)))
	tl.answer(tl.send(t))
	tl.submitAll(t, testBatch(0, "", 4, sa(0, "b", 4)))
	tl.send(t)
	_, _, rw := tl.requeueAfterDrop(map[string]Position{"m": {Seq: 2}})
	if rw == nil || rw.Key != "m" || !rw.Found || rw.Marker.Seq != 2 || rw.Acked != 3 {
		t.Errorf("rewound %+v", rw)
	}
	_, _, rw = tl.requeueAfterDrop(map[string]Position{})
	if rw == nil || rw.Found {
		t.Errorf("lost marker: %+v", rw)
	}
	if tl.idle() {
		t.Error("a rewound target settled what was in flight")
	}

	// A cluster master's slot marker may leave with its slot.
	tc := newTestLedger(true, false)
	tc.submitAll(t, testBatch(0, "", 1, cl(5, "a", 1)))
	tc.answer(tc.send(t))
	if _, _, rw := tc.requeueAfterDrop(map[string]Position{}); rw != nil {
		t.Errorf("cluster: %v", rw)
	}
	if _, _, rw := tc.requeueAfterDrop(map[string]Position{"slot:5": {Seq: 0}}); rw == nil {
		t.Error("cluster: a marker behind is not noticed")
	}
}

// TestLedgerRequeue: batches taken but not sent (the throttle failed) go
// back first.
func TestLedgerRequeue(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 1, sa(0, "a", 1)))
	bs, err := tl.takeNext(context.Background(), func() error { return errWouldWait })
	if err != nil {
		t.Fatal(err)
	}
	tl.submitAll(t, testBatch(0, "", 2, sa(0, "b", 2)))
	tl.requeue(bs)
	if got := tl.queued(); got != "[0@1: a/1 0@2: b/2]" || tl.sending != 0 {
		t.Errorf("queue %s, %d being sent", got, tl.sending)
	}
}

// TestLedgerResend: under skipFenced a batch whose command the target
// refused while queueing goes back without it, the command's name is
// dropped from later batches, and nothing more is sent while a batch with
// a name the target has not taken yet is in flight.
func TestLedgerResend(t *testing.T) {
	tl := newTestLedger(false, true)
	b := NewBatch()
	b.AddStrings(0, "SET", "a", "v")
	b.AddStrings(0, "BOGUS", "x")
	b.AddStrings(0, "SET", "b", "v")
	b.EndUnit(Position{Seq: 1, Offset: 10})
	b.Pos = Position{Seq: 1, State: StateLive, ReplID: "r", Offset: 10}
	later := testBatch(0, "", 2, sa(0, "c", 2))
	tl.submitAll(t, b, later)
	f := tl.send(t)
	if len(f.batches) != 1 {
		t.Fatalf("%d batches in a probing flight", len(f.batches))
	}
	// A batch with names not taken yet is in flight: nothing else goes.
	if _, err := tl.takeNext(context.Background(), func() error { return errWouldWait }); err != errWouldWait {
		t.Fatalf("took a batch behind a probe: %v", err)
	}
	if !tl.resend(f, map[int]string{1: "ERR unknown command 'BOGUS'"}) {
		t.Fatal("not resent")
	}
	tl.acknowledge(f, true, tl.arm)
	if _, ok := tl.appliedAt(0); ok || tl.batches.Load() != 0 {
		t.Error("the aborted batch was acknowledged")
	}
	if got := tl.queued(); got != "[0@1: a/1 b/1 0@2: c/2]" {
		t.Errorf("queue %s", got)
	}
	if len(tl.skipped) != 1 || tl.skipped[0] != `BOGUS "x" (db 0): ERR unknown command 'BOGUS'` {
		t.Errorf("skipped %q", tl.skipped)
	}
	tl.answer(tl.send(t)) // SET is not taken yet: probes alone
	// SET is taken now: the next batch is not a probe, and BOGUS is
	// dropped from it before it is sent.
	nb := NewBatch()
	nb.AddStrings(0, "SET", "d", "v")
	nb.AddStrings(0, "BOGUS", "y")
	nb.EndUnit(Position{Seq: 3, Offset: 30})
	nb.Pos = Position{Seq: 3, State: StateLive, ReplID: "r", Offset: 30}
	tl.submitAll(t, nb)
	f = tl.send(t)
	if len(f.batches) != 1 || f.batches[0].Pos.Seq != 2 {
		t.Fatalf("flight of %d batches", len(f.batches))
	}
	f2 := tl.send(t) // pipelined: c's flight took no probe
	if f2.batches[0].Len() != 1 || len(tl.skipped) != 2 {
		t.Errorf("BOGUS not dropped before sending: %d commands, skipped %q", f2.batches[0].Len(), tl.skipped)
	}

	// A resend after a later flight with batches went out is refused.
	if tl.resend(f, map[int]string{0: "ERR"}) {
		t.Error("resent with a later flight in flight")
	}
}

// TestWriterWaitNotified: the job waits for a unit with Changed, Applied
// and its context, and Drain waits for everything — woken by the
// acknowledgement, never polling, and ended by the context.
func TestWriterWaitNotified(t *testing.T) {
	w := New(Config{Name: "wait", MarkerKey: "m", Fence: true, Log: zerolog.Nop()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	blocked := make(chan struct{}, 16)
	// waitFor is the job's wait (job/finish.go, job/stream.go): take the
	// channel, read the state, wait on the channel.
	waitFor := func(ctx context.Context, seq uint64) error {
		for {
			changed := w.Changed()
			if p, ok := w.Applied(0); ok && p.Seq >= seq {
				return nil
			}
			blocked <- struct{}{}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			}
		}
	}
	tl := &testLedger{ledger: w.led, p: &w.planner}
	if err := w.Submit(ctx, testBatch(0, "", 1, sa(0, "a", 1))); err != nil {
		t.Fatal(err)
	}
	f1 := tl.send(t)
	if err := w.Submit(ctx, testBatch(0, "", 2, sa(0, "b", 2))); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- waitFor(ctx, 2) }()
	drained := make(chan error, 1)
	go func() { drained <- w.Drain(ctx) }()
	<-blocked // the waiter waits
	tl.answer(f1)
	select {
	case err := <-done:
		t.Fatalf("woke with seq 2 not acknowledged (%v)", err)
	case <-blocked: // woken by the acknowledgement of 1, waiting again
	}
	f2 := tl.send(t)
	select {
	case err := <-drained:
		t.Fatalf("Drain returned with a flight outstanding (%v)", err)
	default:
	}
	tl.answer(f2)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-drained; err != nil {
		t.Fatal(err)
	}

	// Ended by the context.
	wctx, wcancel := context.WithCancel(ctx)
	go func() { done <- waitFor(wctx, 9) }()
	<-blocked
	wcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("waiter: %v, want canceled", err)
	}
	tl.submitAll(t, testBatch(0, "", 4, sa(0, "d", 4)))
	dctx, dcancel := context.WithCancel(ctx)
	go func() { drained <- w.Drain(dctx) }()
	dcancel()
	if err := <-drained; !errors.Is(err, context.Canceled) {
		t.Errorf("Drain: %v, want canceled", err)
	}
	if !w.Pending(0) {
		t.Error("the queued batch is not pending")
	}

	// A fatal error wakes every waiter too.
	go func() { drained <- w.Drain(ctx) }()
	tl.setFatal(errors.New("refused"))
	if err := <-drained; err == nil || err.Error() != "refused" {
		t.Errorf("Drain: %v, want the fatal error", err)
	}
	if err := w.Submit(ctx, NewBatch()); err == nil || err.Error() != "refused" {
		t.Errorf("Submit: %v, want the fatal error", err)
	}
}

// TestSubmitBackPressure: Submit waits while maxQueued bytes are queued and
// goes on when the sender takes them; it gives up with its context.
func TestSubmitBackPressure(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.cfg.maxQueued = 1
	tl.submitAll(t, testBatch(0, "", 1, sa(0, "a", 1)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	submitted := make(chan error, 1)
	go func() { submitted <- tl.submit(ctx, testBatch(0, "", 2, sa(0, "b", 2))) }()
	// Whether or not the submitter is waiting yet, taking the queue lets
	// its batch in.
	tl.send(t)
	if err := <-submitted; err != nil {
		t.Fatal(err)
	}
	go func() { submitted <- tl.submit(ctx, testBatch(0, "", 3, sa(0, "c", 3))) }()
	cancel()
	if err := <-submitted; !errors.Is(err, context.Canceled) {
		t.Errorf("Submit: %v, want canceled", err)
	}
}

// takeNextAsync runs takeNext as the sender does, in a goroutine; took
// gets what it took (nil after an error).
func (tl *testLedger) takeNextAsync(ctx context.Context) (took <-chan []*Batch) {
	res := make(chan []*Batch, 1)
	go func() {
		bs, err := tl.takeNext(ctx, func() error { return nil })
		if err != nil {
			bs = nil
		}
		res <- bs
	}()
	return res
}

// taken is what the sender of takeNextAsync took; what says what was
// awaited, for the failure.
func taken(t *testing.T, took <-chan []*Batch, what string) []*Batch {
	t.Helper()
	select {
	case bs := <-took:
		return bs
	case <-time.After(10 * time.Second):
		t.Fatalf("the sender was not woken: %s", what)
		return nil
	}
}

func (tl *testLedger) sleeps() int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.senderSleeps
}

// asleep waits until the sender has gone to sleep n times in all: once it
// has, a broadcast reaches it (it joins the cond before it lets go of the
// lock).
func (tl *testLedger) asleep(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for tl.sleeps() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the sender did not go to sleep (%d times, want %d)", tl.sleeps(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestLedgerSenderSleepsThroughShortQueue: with a standalone flight
// outstanding, batches that leave the queue short of a flight do not wake
// the sender; the acknowledgement does, and it takes them all at once.
func TestLedgerSenderSleepsThroughShortQueue(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 1, sa(0, "a", 1)))
	f := tl.send(t)
	took := tl.takeNextAsync(context.Background())
	tl.asleep(t, 1)
	for i := range 3 {
		tl.submitAll(t, testBatch(0, "", uint64(i+2), sa(0, "b", uint64(i+2))))
		// Had it been woken, it would find the queue short and sleep again.
		time.Sleep(2 * time.Millisecond)
	}
	tl.answer(f)
	if bs := taken(t, took, "by the acknowledgement"); len(bs) != 3 {
		t.Errorf("took %d batches after the acknowledgement, want the 3 queued", len(bs))
	}
	if n := tl.sleeps(); n != 1 {
		t.Errorf("the sender went to sleep %d times, want once: only the acknowledgement woke it", n)
	}
}

// TestLedgerSenderWokenByFullQueue: a queue that reaches a flight's worth
// wakes the sender while a flight is still outstanding (pipelining), and
// the session's wake at a cancelled context reaches a sender that has
// nothing to take.
func TestLedgerSenderWokenByFullQueue(t *testing.T) {
	tl := newTestLedger(false, false)
	tl.submitAll(t, testBatch(0, "", 1, sa(0, "a", 1)))
	tl.send(t)
	took := tl.takeNextAsync(context.Background())
	tl.asleep(t, 1)
	ops := make([]testOp, standaloneHoldOps)
	for i := range ops {
		ops[i] = sa(0, fmt.Sprintf("k%d", i), uint64(i+2))
	}
	tl.submitAll(t, testBatch(0, "", uint64(len(ops)+1), ops...))
	if bs := taken(t, took, "by a queue of a full flight"); len(bs) != 1 {
		t.Errorf("took %d batches, want the long one", len(bs))
	}

	ctx, cancel := context.WithCancel(context.Background())
	took = tl.takeNextAsync(ctx)
	tl.asleep(t, 2)
	cancel()
	tl.wake() // as the session does when its context ends
	if bs := taken(t, took, "by a cancelled context"); bs != nil {
		t.Errorf("a cancelled sender took %d batches", len(bs))
	}
}
