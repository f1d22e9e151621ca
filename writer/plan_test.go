package writer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/resp"
)

// testOp is one command of a test batch: SET key v in db (standalone) or
// slot (cluster; -1: keyless), the whole of unit seq, which ends at source
// offset 10*seq.
type testOp struct {
	db, slot int
	key      string
	seq      uint64
}

func sa(db int, key string, seq uint64) testOp   { return testOp{db: db, slot: -1, key: key, seq: seq} }
func cl(slot int, key string, seq uint64) testOp { return testOp{slot: slot, key: key, seq: seq} }

// testBatch is a batch of stream recording unit pos at source offset
// 100*pos (so that a marker shows whether it took the batch's position or
// an op's, whose unit ends at 10*seq), under marker ("" the default).
func testBatch(stream int, marker string, pos uint64, ops ...testOp) *Batch {
	b := NewBatch()
	b.Stream, b.MarkerKey = stream, marker
	for _, o := range ops {
		b.AddEncoded(o.db, o.slot, resp.AppendCommandStrings(nil, "SET", o.key, "v"))
		b.EndUnit(Position{Seq: o.seq, State: StateLive, ReplID: "r", Offset: int64(10 * o.seq)})
	}
	b.Pos = Position{Seq: pos, State: StateLive, ReplID: "r", Offset: int64(100 * pos)}
	return b
}

func enc(args ...string) string { return string(resp.AppendCommandStrings(nil, args...)) }

func set(key string) string { return enc("SET", key, "v") }

// mark is the SET of a marker recording unit seq at offset off, low low.
func mark(key string, seq uint64, off, low int64) string {
	return enc("SET", key, Position{Seq: seq, State: StateLive, ReplID: "r", Offset: off, Low: low}.Encode())
}

var (
	multi = enc("MULTI")
	exec  = enc("EXEC")
)

func sel(db int) string { return enc("SELECT", fmt.Sprint(db)) }

// wantGroup is a planned group: its marker, the unit the marker records,
// whether it is a transaction and its commands as "batch.op".
type wantGroup struct {
	marker string
	seq    uint64
	multi  bool
	ops    string
}

func (g *group) opList() string {
	var s []string
	for _, o := range g.ops {
		s = append(s, fmt.Sprintf("%d.%d", o.b, o.i))
	}
	return strings.Join(s, " ")
}

// render is what the writer sends for f on a connection in db 0 with its
// markers in db 0.
func render(f *flight, slotted bool) string {
	c := wire{slotted: slotted, markerDB: 0, curDB: 0}
	c.layout(f)
	var out []byte
	c.emit(f, func(p []byte) { out = append(out, p...) })
	return string(out)
}

// planGroups is f's groups as wantGroup renders them.
func planGroups(f *flight) []wantGroup {
	var got []wantGroup
	for i := range f.groups {
		g := &f.groups[i]
		got = append(got, wantGroup{g.marker, g.seq, g.multi, g.opList()})
	}
	return got
}

func checkPlan(t *testing.T, f *flight, slotted bool, groups []wantGroup, wireWant string) {
	t.Helper()
	if got := planGroups(f); fmt.Sprint(got) != fmt.Sprint(groups) {
		t.Errorf("groups\n got %+v\nwant %+v", got, groups)
	}
	if w := render(f, slotted); w != wireWant {
		t.Errorf("wire\n got %q\nwant %q", w, wireWant)
	}
}

func TestPlanStandalone(t *testing.T) {
	cases := []struct {
		name   string
		fence  bool
		low    func(int) int64
		bs     []*Batch
		groups []wantGroup
		wire   string
	}{{
		name:  "one stream's batches coalesce, the marker records the last",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 2, sa(0, "a", 1), sa(0, "b", 2)),
			testBatch(0, "", 3, sa(0, "c", 3)),
		},
		groups: []wantGroup{{"m", 3, true, "0.0 0.1 1.0"}},
		wire:   multi + sel(0) + set("a") + set("b") + set("c") + mark("m", 3, 300, -1) + exec,
	}, {
		name:  "a batch recording an earlier position starts a group",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 5, sa(0, "a", 5)),
			testBatch(0, "", 4),
			testBatch(0, "", 6, sa(0, "b", 6)),
		},
		groups: []wantGroup{{"m", 5, true, "0.0"}, {"m", 6, true, "2.0"}},
		wire: multi + sel(0) + set("a") + mark("m", 5, 500, -1) + exec +
			multi + sel(0) + set("b") + mark("m", 6, 600, -1) + exec,
	}, {
		name:  "an earlier position with nothing after it is recorded alone",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 5, sa(0, "a", 5)),
			testBatch(0, "", 4),
		},
		groups: []wantGroup{{"m", 5, true, "0.0"}, {"m", 4, false, ""}},
		wire:   multi + sel(0) + set("a") + mark("m", 5, 500, -1) + exec + mark("m", 4, 400, -1),
	}, {
		name:  "streams go to their own markers",
		fence: true,
		bs: []*Batch{
			testBatch(0, "m:0", 1, sa(0, "a", 1)),
			testBatch(1, "m:1", 2, sa(0, "b", 2)),
			testBatch(1, "m:1", 3, sa(0, "c", 3)),
			testBatch(0, "m:0", 4, sa(0, "d", 4)),
		},
		groups: []wantGroup{{"m:0", 1, true, "0.0"}, {"m:1", 3, true, "1.0 2.0"}, {"m:0", 4, true, "3.0"}},
		wire: multi + sel(0) + set("a") + mark("m:0", 1, 100, -1) + exec +
			multi + sel(0) + set("b") + set("c") + mark("m:1", 3, 300, -1) + exec +
			multi + sel(0) + set("d") + mark("m:0", 4, 400, -1) + exec,
	}, {
		name:  "one stream under two markers: a group per marker",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 1, sa(0, "a", 1)),
			testBatch(0, "x", 2, sa(0, "b", 2)),
		},
		groups: []wantGroup{{"m", 1, true, "0.0"}, {"x", 2, true, "1.0"}},
		wire: multi + sel(0) + set("a") + mark("m", 1, 100, -1) + exec +
			multi + sel(0) + set("b") + mark("x", 2, 200, -1) + exec,
	}, {
		name:  "each command in its db, the marker in the marker db",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 3, sa(2, "a", 1), sa(-1, "any", 2), sa(1, "b", 3)),
		},
		groups: []wantGroup{{"m", 3, true, "0.0 0.1 0.2"}},
		wire:   multi + sel(2) + set("a") + set("any") + sel(1) + set("b") + sel(0) + mark("m", 3, 300, -1) + exec,
	}, {
		name:  "unfenced: no transaction, SELECT only when the db changes",
		fence: false,
		bs: []*Batch{
			testBatch(0, "", 2, sa(0, "a", 1), sa(0, "b", 2)),
			testBatch(0, "", 3, sa(1, "c", 3)),
		},
		groups: []wantGroup{{"m", 3, false, "0.0 0.1 1.0"}},
		wire:   set("a") + set("b") + sel(1) + set("c") + sel(0) + mark("m", 3, 300, -1),
	}, {
		name:   "a position update alone is a marker SET",
		fence:  true,
		bs:     []*Batch{testBatch(0, "", 7)},
		groups: []wantGroup{{"m", 7, false, ""}},
		wire:   mark("m", 7, 700, -1),
	}, {
		name:  "the low watermark is recorded",
		fence: true,
		low:   func(stream int) int64 { return int64(1000 + stream) },
		bs: []*Batch{
			testBatch(0, "m:0", 1, sa(0, "a", 1)),
			testBatch(1, "m:1", 2, sa(0, "b", 2)),
		},
		groups: []wantGroup{{"m:0", 1, true, "0.0"}, {"m:1", 2, true, "1.0"}},
		wire: multi + sel(0) + set("a") + mark("m:0", 1, 100, 1000) + exec +
			multi + sel(0) + set("b") + mark("m:1", 2, 200, 1001) + exec,
	}, {
		name:  "runs of one stream, broken by another stream and by an earlier position",
		fence: true,
		bs: []*Batch{
			testBatch(0, "m:0", 10, sa(0, "a", 9), sa(0, "b", 10)),
			testBatch(0, "m:0", 11, sa(0, "c", 11)),
			testBatch(0, "m:0", 12),
			testBatch(1, "m:1", 13, sa(0, "d", 13)),
			testBatch(0, "m:0", 14, sa(0, "e", 14)),
			testBatch(0, "m:0", 9),
			testBatch(0, "m:0", 15, sa(0, "f", 15)),
		},
		// The batch at 9 records an earlier position than the one before
		// it: it starts a new group (with 15), so that the group of 14
		// records 14, not 9.
		groups: []wantGroup{{"m:0", 12, true, "0.0 0.1 1.0"}, {"m:1", 13, true, "3.0"}, {"m:0", 14, true, "4.0"}, {"m:0", 15, true, "6.0"}},
		wire: multi + sel(0) + set("a") + set("b") + set("c") + mark("m:0", 12, 1200, -1) + exec +
			multi + sel(0) + set("d") + mark("m:1", 13, 1300, -1) + exec +
			multi + sel(0) + set("e") + mark("m:0", 14, 1400, -1) + exec +
			multi + sel(0) + set("f") + mark("m:0", 15, 1500, -1) + exec,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &planner{marker: "m", fence: tc.fence, low: tc.low}
			checkPlan(t, planFlight(tc.bs, p), false, tc.groups, tc.wire)
		})
	}
}

// units is n commands SET k<seq> of one unit each, numbered from first.
func units(first uint64, n int) []testOp {
	ops := make([]testOp, n)
	for i := range ops {
		seq := first + uint64(i)
		ops[i] = sa(0, fmt.Sprint("k", seq), seq)
	}
	return ops
}

// txn is the wire of one fenced transaction: SET k<seq> for units
// from..to, then the marker recording unit mseq at offset moff.
func txn(from, to, mseq uint64, moff int64) string {
	w := multi + sel(0)
	for seq := from; seq <= to; seq++ {
		w += set(fmt.Sprint("k", seq))
	}
	return w + mark("m", mseq, moff, -1) + exec
}

// TestPlanCutsLongRuns: a fenced standalone run of batches goes out as
// transactions of about txnOps commands, cut where a batch recorded a unit
// boundary (its marker records that unit, at its offset) or between
// batches (the batch's position); the run's last transaction records the
// last batch's position. Under on_error = skip a run stays one transaction.
func TestPlanCutsLongRuns(t *testing.T) {
	if txnOps != 64 {
		t.Fatalf("the cases assume txnOps = 64, not %d", txnOps)
	}
	ops := func(b, from, to int) string {
		var s []string
		for i := from; i <= to; i++ {
			s = append(s, fmt.Sprintf("%d.%d", b, i))
		}
		return strings.Join(s, " ")
	}
	t.Run("cut inside a batch", func(t *testing.T) {
		bs := []*Batch{testBatch(0, "", 150, units(1, 150)...)}
		p := &planner{marker: "m", fence: true, split: true}
		checkPlan(t, planFlight(bs, p), false,
			[]wantGroup{{"m", 64, true, ops(0, 0, 63)}, {"m", 128, true, ops(0, 64, 127)}, {"m", 150, true, ops(0, 128, 149)}},
			txn(1, 64, 64, 640)+txn(65, 128, 128, 1280)+txn(129, 150, 150, 15000))
	})
	t.Run("cut between batches", func(t *testing.T) {
		bs := []*Batch{
			testBatch(0, "", 40, units(1, 40)...),
			testBatch(0, "", 80, units(41, 40)...),
			testBatch(0, "", 90, units(81, 10)...),
		}
		p := &planner{marker: "m", fence: true, split: true}
		checkPlan(t, planFlight(bs, p), false,
			[]wantGroup{{"m", 80, true, ops(0, 0, 39) + " " + ops(1, 0, 39)}, {"m", 90, true, ops(2, 0, 9)}},
			txn(1, 80, 80, 8000)+txn(81, 90, 90, 9000))
	})
	t.Run("cut between batches by their bytes", func(t *testing.T) {
		// Batches of one long command each, as a folded MSET of hundreds
		// of pairs is: few ops, yet a transaction ends once it holds
		// txnBytes (it held 64 of them before: ~1 MiB, a 20-30 ms EXEC).
		long := strings.Repeat("x", 30<<10)
		seq := uint64(0)
		batch := func(n int) *Batch {
			b := NewBatch()
			for range n {
				seq++
				pos := Position{Seq: seq, State: StateLive, ReplID: "r", Offset: int64(10 * seq)}
				b.AddEncoded(0, -1, resp.AppendCommandStrings(nil, "SET", fmt.Sprint("k", seq), long))
				b.EndUnit(pos)
				b.Pos = pos
			}
			return b
		}
		check := func(want []wantGroup, bs ...*Batch) {
			t.Helper()
			got := planGroups(planFlight(bs, &planner{marker: "m", fence: true, split: true}))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("groups\n got %+v\nwant %+v", got, want)
			}
		}
		check([]wantGroup{{"m", 3, true, "0.0 1.0 2.0"}, {"m", 4, true, "3.0"}},
			batch(1), batch(1), batch(1), batch(1))
		// A batch cut inside: its bytes after the cut begin the count anew.
		seq = 0
		check([]wantGroup{{"m", 4, true, "0.0 1.0 1.1 1.2"}, {"m", 7, true, "1.3 2.0 3.0"}, {"m", 8, true, "4.0"}},
			batch(1), batch(4), batch(1), batch(1), batch(1))
	})
	t.Run("a cut at a batch's end waits for the next cut", func(t *testing.T) {
		// The batch's position may be past its last command's unit (a
		// PING): the run goes on, and the next batch is cut between.
		bs := []*Batch{
			testBatch(0, "", 65, units(1, 64)...),
			testBatch(0, "", 70, units(66, 5)...),
		}
		p := &planner{marker: "m", fence: true, split: true}
		checkPlan(t, planFlight(bs, p), false,
			[]wantGroup{{"m", 65, true, ops(0, 0, 63)}, {"m", 70, true, ops(1, 0, 4)}},
			txn(1, 64, 65, 6500)+txn(66, 70, 70, 7000))
	})
	t.Run("under on_error = skip, one transaction", func(t *testing.T) {
		bs := []*Batch{testBatch(0, "", 150, units(1, 150)...)}
		p := &planner{marker: "m", fence: true}
		checkPlan(t, planFlight(bs, p), false,
			[]wantGroup{{"m", 150, true, ops(0, 0, 149)}}, txn(1, 150, 150, 15000))
	})
}

// TestBatchCutsFollowTruncate: dropping an unfinished unit drops the cuts
// past it, and a recycled batch starts without cuts.
func TestBatchCutsFollowTruncate(t *testing.T) {
	b := testBatch(0, "", 130, units(1, 130)...)
	if len(b.cuts) != 2 || b.cuts[0].n != 64 || b.cuts[1].n != 128 || b.cuts[1].pos.Seq != 128 {
		t.Fatalf("cuts %+v, want after 64 and 128", b.cuts)
	}
	b.Truncate(100)
	if len(b.cuts) != 1 || b.cuts[0].n != 64 {
		t.Errorf("cuts after Truncate(100): %+v", b.cuts)
	}
	b.Release()
	if nb := NewBatch(); len(nb.cuts) != 0 {
		t.Errorf("a new batch has cuts %+v", nb.cuts)
	}
}

// TestBatchCutsFollowWithout: a batch sent again without the commands that
// ran keeps its cuts where they fall among the rest, and its idempotent
// commands stay marked.
func TestBatchCutsFollowWithout(t *testing.T) {
	b := testBatch(0, "", 200, units(1, 200)...)
	nb := b.without(func(i int) bool { return i < 70 || i == 100 })
	var got []string
	for _, c := range nb.cuts {
		got = append(got, fmt.Sprintf("%d@%d", c.n, c.pos.Seq))
	}
	// Cuts after units 64 (all dropped), 128 and 192; unit 101 is gone.
	if fmt.Sprint(got) != "[57@128 121@192]" || nb.Len() != 129 {
		t.Errorf("cuts %v in %d commands, want [57@128 121@192] in 129", got, nb.Len())
	}
	ib := idemBatch(0, 3, sa(0, "a", 1), sa(0, "b", 2), sa(0, "c", 3))
	if nb := ib.without(func(i int) bool { return i == 0 }); !nb.replayable() || nb.idem != 2 {
		t.Errorf("idempotent commands %d of %d after without", nb.idem, nb.Len())
	}
}

func TestPlanCluster(t *testing.T) {
	cases := []struct {
		name   string
		fence  bool
		bs     []*Batch
		groups []wantGroup
		wire   string
	}{{
		name:  "a group per slot, its marker at the slot's last unit",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 2, cl(5, "a", 1), cl(7, "b", 2)),
			testBatch(0, "", 4, cl(5, "c", 3), cl(5, "d", 4)),
		},
		groups: []wantGroup{{"slot:5", 4, true, "0.0 1.0 1.1"}, {"slot:7", 2, true, "0.1"}},
		wire: multi + set("a") + set("c") + set("d") + mark("slot:5", 4, 40, -1) + exec +
			multi + set("b") + mark("slot:7", 2, 20, -1) + exec,
	}, {
		name:  "a keyless command runs alone under its stream's marker, between segments",
		fence: true,
		bs: []*Batch{
			testBatch(1, "", 3, cl(5, "a", 1), cl(-1, "k", 2), cl(5, "b", 3)),
			testBatch(1, "", 4, cl(9, "c", 4)),
		},
		groups: []wantGroup{{"slot:5", 1, true, "0.0"}, {"stream:1", 2, true, "0.1"}, {"slot:5", 3, true, "0.2"}, {"slot:9", 4, true, "1.0"}},
		wire: multi + set("a") + mark("slot:5", 1, 10, -1) + exec +
			multi + set("k") + mark("stream:1", 2, 20, -1) + exec +
			multi + set("b") + mark("slot:5", 3, 30, -1) + exec +
			multi + set("c") + mark("slot:9", 4, 40, -1) + exec,
	}, {
		name:  "a keyless command first and last",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 3, cl(-1, "k1", 1), cl(5, "a", 2), cl(-1, "k2", 3)),
		},
		groups: []wantGroup{{"stream:0", 1, true, "0.0"}, {"slot:5", 2, true, "0.1"}, {"stream:0", 3, true, "0.2"}},
		wire: multi + set("k1") + mark("stream:0", 1, 10, -1) + exec +
			multi + set("a") + mark("slot:5", 2, 20, -1) + exec +
			multi + set("k2") + mark("stream:0", 3, 30, -1) + exec,
	}, {
		name:  "batches of several streams share a slot's group",
		fence: true,
		bs: []*Batch{
			testBatch(0, "", 1, cl(5, "a", 1)),
			testBatch(1, "", 2, cl(5, "b", 2)),
		},
		groups: []wantGroup{{"slot:5", 2, true, "0.0 1.0"}},
		wire:   multi + set("a") + set("b") + mark("slot:5", 2, 20, -1) + exec,
	}, {
		name:   "position updates only: each stream's last batch under its stream marker",
		fence:  true,
		bs:     []*Batch{testBatch(0, "", 4), testBatch(2, "", 6), testBatch(0, "", 7)},
		groups: []wantGroup{{"stream:2", 6, false, ""}, {"stream:0", 7, false, ""}},
		wire:   mark("stream:2", 6, 600, -1) + mark("stream:0", 7, 700, -1),
	}, {
		name:  "unfenced: everything in order, then each stream's position",
		fence: false,
		bs: []*Batch{
			testBatch(0, "", 1, cl(5, "a", 1)),
			testBatch(1, "", 2, cl(7, "b", 2), cl(-1, "k", 2)),
			testBatch(0, "", 3, cl(5, "c", 3)),
		},
		groups: []wantGroup{{"", 0, false, "0.0 1.0 1.1 2.0"}, {"stream:1", 2, false, ""}, {"stream:0", 3, false, ""}},
		wire:   set("a") + set("b") + set("k") + set("c") + mark("stream:1", 2, 200, -1) + mark("stream:0", 3, 300, -1),
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := &planner{slotted: true, fence: tc.fence,
				slotMarker:   func(slot int) string { return fmt.Sprintf("slot:%d", slot) },
				streamMarker: func(stream int) string { return fmt.Sprintf("stream:%d", stream) }}
			checkPlan(t, planFlight(tc.bs, p), true, tc.groups, tc.wire)
		})
	}
}

// TestPlanReusesScratch: a planner plans flight after flight; what one
// flight left in its scratch does not leak into the next.
func TestPlanReusesScratch(t *testing.T) {
	named := 0
	lows := map[int]int{}
	p := &planner{slotted: true, fence: true,
		slotMarker:   func(slot int) string { named++; return fmt.Sprintf("slot:%d", slot) },
		streamMarker: func(stream int) string { return fmt.Sprintf("stream:%d", stream) },
		low:          func(stream int) int64 { lows[stream]++; return 5 }}
	f1 := planFlight([]*Batch{testBatch(0, "", 2, cl(5, "a", 1), cl(6, "b", 2), cl(5, "c", 2))}, p)
	checkPlan(t, f1, true, []wantGroup{{"slot:5", 2, true, "0.0 0.2"}, {"slot:6", 2, true, "0.1"}},
		multi+set("a")+set("c")+mark("slot:5", 2, 20, 5)+exec+multi+set("b")+mark("slot:6", 2, 20, 5)+exec)
	f2 := planFlight([]*Batch{testBatch(0, "", 3, cl(6, "d", 3))}, p)
	checkPlan(t, f2, true, []wantGroup{{"slot:6", 3, true, "0.0"}},
		multi+set("d")+mark("slot:6", 3, 30, 5)+exec)
	if named != 2 {
		t.Errorf("slot markers named %d times, want once per slot", named)
	}
	if lows[0] != 2 {
		t.Errorf("low watermark asked %d times in two flights, want once per flight", lows[0])
	}
}

// TestPlanRecycledFlights: a flight planned into the buffers of one
// released before it (another shape: more groups, dbs switched, a cluster's
// slots) sends and lays out what a flight planned first does.
func TestPlanRecycledFlights(t *testing.T) {
	standalone := &planner{marker: "m", fence: true, split: true}
	cluster := &planner{slotted: true, fence: true,
		slotMarker:   func(slot int) string { return fmt.Sprintf("slot:%d", slot) },
		streamMarker: func(stream int) string { return fmt.Sprintf("stream:%d", stream) }}
	long := make([]testOp, 3*txnOps)
	for i := range long {
		long[i] = sa(i%3, fmt.Sprintf("k%d", i), uint64(i+1))
	}
	plans := []struct {
		p       *planner
		slotted bool
		bs      []*Batch
	}{
		{standalone, false, []*Batch{testBatch(0, "", uint64(len(long)), long...)}},
		{cluster, true, []*Batch{testBatch(0, "", 4, cl(5, "a", 1), cl(6, "b", 2), cl(-1, "x", 3), cl(5, "c", 4))}},
		{standalone, false, []*Batch{testBatch(0, "", 2, sa(1, "a", 1)), testBatch(1, "n", 3, sa(0, "b", 3))}},
		{cluster, true, []*Batch{testBatch(0, "", 1, cl(7, "d", 1))}},
	}
	describe := func(f *flight, slotted bool) string {
		var gs []string
		for i := range f.groups {
			g := &f.groups[i]
			gs = append(gs, fmt.Sprintf("%s/%d/%v/%s/%v", g.marker, g.seq, g.multi, g.opList(), g.items))
		}
		return fmt.Sprint(gs) + render(f, slotted) + fmt.Sprint(f.size)
	}
	var first []string
	for _, pl := range plans {
		f := planFlight(pl.bs, pl.p)
		first = append(first, describe(f, pl.slotted))
		f.release()
	}
	for round := range 3 {
		for i := len(plans) - 1; i >= 0; i-- {
			f := planFlight(plans[i].bs, plans[i].p)
			if got := describe(f, plans[i].slotted); got != first[i] {
				t.Errorf("round %d, flight %d, recycled:\n got %s\nwant %s", round, i, got, first[i])
			}
			f.release()
		}
	}
}

// TestLayoutItems: the items tell the reply reader which command (or
// ferry's own SELECT and marker) each reply answers.
func TestLayoutItems(t *testing.T) {
	p := &planner{marker: "m", fence: true}
	f := planFlight([]*Batch{testBatch(0, "", 3, sa(2, "a", 1), sa(2, "b", 2), sa(-1, "c", 3)), testBatch(1, "n", 4, sa(0, "d", 4))}, p)
	c := wire{markerDB: 0, curDB: 0}
	c.layout(f)
	got := fmt.Sprint(f.groups[0].items, f.groups[1].items)
	if want := "[-1 0 1 2 -1 -1] [-1 0 -1]"; got != want {
		t.Errorf("items %s, want %s", got, want)
	}
}

func TestSelectFlight(t *testing.T) {
	// batches of n commands each
	queue := func(ns ...int) []*Batch {
		var q []*Batch
		for _, n := range ns {
			b := NewBatch()
			for i := range n {
				b.AddStrings(0, "SET", fmt.Sprintf("%06d", i), "v")
			}
			q = append(q, b)
		}
		return q
	}
	opSize := int64(len(set("000000")))
	cases := []struct {
		name     string
		lim      sendLimits
		queue    []*Batch
		inflight int64 // bytes, in one flight if > 0
		want     int
	}{
		{"standalone, idle: the whole queue", sendLimits{maxSendOps: 200000, maxInflight: 1 << 20}, queue(10, 10, 10), 0, 3},
		{"standalone, a flight outstanding: a short queue waits", sendLimits{maxSendOps: 200000, maxInflight: 1 << 20}, queue(10, 10), 100, 0},
		{"standalone, a flight outstanding: a backlog goes", sendLimits{maxSendOps: 200000, maxInflight: 1 << 30}, queue(300, 300), 100, 2},
		{"standalone: at most standaloneSendOps commands", sendLimits{maxSendOps: 200000, maxInflight: 1 << 30}, queue(4000, 4000, 4000), 0, 2},
		{"standalone: at most maxSendOps commands", sendLimits{maxSendOps: 25, maxInflight: 1 << 20}, queue(10, 10, 10), 0, 2},
		{"standalone: at most half of maxInflight", sendLimits{maxSendOps: 200000, maxInflight: 40 * opSize}, queue(10, 10, 10), 0, 2},
		{"standalone: within what is left of maxInflight", sendLimits{maxSendOps: 200000, maxInflight: 1000 * opSize}, queue(5, 10, 10), 985 * opSize, 2},
		{"standalone: the head goes whatever its size", sendLimits{maxSendOps: 5, maxInflight: 1 << 20}, queue(10, 10), 0, 1},
		{"one by one (skip or throttle)", sendLimits{oneByOne: true, maxSendOps: 200000, maxInflight: 1 << 20}, queue(10, 10, 10), 0, 1},
		{"one by one: never waits", sendLimits{oneByOne: true, maxSendOps: 200000, maxInflight: 1 << 20}, queue(10, 10), 100, 1},
		{"cluster: never waits", sendLimits{slotted: true, maxSendOps: 200000, maxInflight: 1 << 20}, queue(10, 10), 100, 2},
		{"cluster: at most maxSendOps commands", sendLimits{slotted: true, maxSendOps: 10000, maxInflight: 1 << 30}, queue(4000, 4000, 4000), 0, 2},
		{"cluster: beyond standaloneSendOps", sendLimits{slotted: true, maxSendOps: 200000, maxInflight: 1 << 30}, queue(4000, 4000, 4000), 0, 3},
		{"cluster: at most half of maxInflight", sendLimits{slotted: true, maxSendOps: 200000, maxInflight: 40 * opSize}, queue(10, 10, 10), 30 * opSize, 2},
		{"fenced cluster, idle: the whole queue", sendLimits{slotted: true, fenced: true, maxSendOps: 200000, maxInflight: 1 << 30, maxQueued: 1 << 20}, queue(10, 10), 0, 2},
		{"fenced cluster, a flight outstanding: a short queue waits", sendLimits{slotted: true, fenced: true, maxSendOps: 200000, maxInflight: 1 << 30, maxQueued: 1 << 20}, queue(10, 10), 100, 0},
		{"fenced cluster, a flight outstanding: a full flight goes", sendLimits{slotted: true, fenced: true, maxSendOps: 20, maxInflight: 1 << 30, maxQueued: 1 << 20}, queue(10, 10), 100, 2},
		{"fenced cluster, a flight outstanding: 3/4 of maxQueued goes", sendLimits{slotted: true, fenced: true, maxSendOps: 200000, maxInflight: 1 << 30, maxQueued: 26 * opSize}, queue(10, 10), 100, 2},
		{"fenced cluster, a flight outstanding: below 3/4 of maxQueued waits", sendLimits{slotted: true, fenced: true, maxSendOps: 200000, maxInflight: 1 << 30, maxQueued: 27 * opSize}, queue(10, 10), 100, 0},
		{"fenced cluster, a flight outstanding: more than fits goes", sendLimits{slotted: true, fenced: true, maxSendOps: 10000, maxInflight: 1 << 30, maxQueued: 1 << 30}, queue(4000, 4000, 4000), 100, 2},
		{"fenced cluster, one by one (throttle): never waits", sendLimits{slotted: true, fenced: true, oneByOne: true, maxSendOps: 200000, maxInflight: 1 << 30, maxQueued: 1 << 20}, queue(10, 10), 100, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			flights := 0
			if tc.inflight > 0 {
				flights = 1
			}
			n, size := tc.lim.selectFlight(tc.queue, tc.inflight, flights)
			want := 0
			for _, b := range tc.queue[:tc.want] {
				want += b.Size()
			}
			if n != tc.want || size != want {
				t.Errorf("selected %d batches of %d bytes, want %d of %d", n, size, tc.want, want)
			}
		})
	}
}
