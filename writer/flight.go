// A flight: the batches sent together, planned into fenced groups (per
// slot on a cluster master) with the marker each group sets.

package writer

import (
	"sync"

	"github.com/ferry-dev/ferry/resp"
)

type groupStatus uint8

const (
	statusPending groupStatus = iota
	statusApplied
	statusRedirected
)

type opAt struct{ b, i int32 }

// group is one transaction on the wire (or, unfenced, a run of commands).
type group struct {
	ops    []opAt
	items  []int32 // per command sent: index into ops, or -1 (SELECT, marker)
	marker string
	seq    uint64
	multi  bool
	status groupStatus
	set    [2]int // the marker's SET in the flight's arena

	got       int
	queueErrs map[int]string
}

// flight is what went out in one go: groups built from one or more batches,
// or a PING.
type flight struct {
	batches       []*Batch
	groups        []group
	arena         []byte // encoded marker SETs
	size          int64
	cur           int                     // group being answered
	redirectedOps map[*Batch]map[int]bool // ops sent back for routing
	resent        bool                    // its batch went back to the queue (see resend)
	// replay: every command is idempotent and the flight went out without
	// the fence; after a dropped connection only its replies say what ran.
	replay bool
	// opsBuf and itemsBuf back the groups' ops and items; with groups and
	// arena they are kept when the flight is recycled.
	opsBuf   []opAt
	itemsBuf []int32
}

// Acknowledged flights are recycled: under a steady load a writer plans
// over a thousand flights a second, and their groups, command lists, items
// and marker arena were fresh memory each time (allocating and zeroing it
// was a tenth of ferry's sampled CPU in the live stream).
var flightPool = sync.Pool{New: func() any { return new(flight) }}

// newFlight is an empty flight of bs, its buffers recycled.
func newFlight(bs []*Batch) *flight {
	f := flightPool.Get().(*flight)
	clear(f.groups) // drop what the groups referred to (queue errors, markers)
	*f = flight{batches: bs, groups: f.groups[:0], arena: f.arena[:0], opsBuf: f.opsBuf[:0], itemsBuf: f.itemsBuf[:0]}
	return f
}

// release recycles f. Only the ledger calls it, when f leaves it
// acknowledged: nothing refers to f after that (the reply reader drops it,
// the sender finished with it before its last reply could come). It does
// not write f: the sender may still be returning from emit.
func (f *flight) release() { flightPool.Put(f) }

const itemInternal = -1

var (
	cmdSet      = []byte("SET")
	replyQueued = []byte("+QUEUED\r\n")
	cmdMulti    = resp.AppendCommandStrings(nil, "MULTI")
	cmdExec     = resp.AppendCommandStrings(nil, "EXEC")
	cmdPing     = resp.AppendCommandStrings(nil, "PING")
)

// planner is what planning a flight depends on, held apart from the Writer
// so that planFlight is a function of the batches and this alone. The sender
// goroutine owns it; its scratch is reused from flight to flight.
type planner struct {
	slotted bool
	fence   bool
	split   bool   // standalone, fenced: a run is split into transactions of about txnOps
	replay  bool   // fenced: a flight of idempotent commands only goes out unfenced
	marker  string // standalone: the marker of a batch that names none
	// slotMarker and streamMarker name the markers of a cluster master
	// (see Config).
	slotMarker   func(slot int) string
	streamMarker func(stream int) string
	// low is a stream's global low watermark, asked once per stream and
	// flight (nil: unknown, recorded as -1).
	low func(stream int) int64

	slotKeys []string // slot → its marker key, built once per slot
	// A slot belongs to the current segment when slotGen[slot] == gen, as
	// group slotGroup[slot].
	slotGen   []uint32
	slotGroup []int32
	gen       uint32
	enc       []byte
}

func newPlanner(cfg *Config) planner {
	// Not under on_error = skip: a refused command's batch is sent again
	// without it only if it was the flight's one transaction.
	split := cfg.Fence && !cfg.Slotted && cfg.OnError != Skip
	// Only a cluster master sends a flight of idempotent commands unfenced
	// (see planFlight): a standalone target's transactions of txnOps cost
	// about what the same commands cost unfenced, and are confirmed one by
	// one after a dropped connection. Not under on_error = skip either: a
	// refused command would leave the rest of its group applied around a
	// hole.
	replay := cfg.Fence && cfg.Slotted && cfg.OnError != Skip
	return planner{slotted: cfg.Slotted, fence: cfg.Fence, split: split, replay: replay, marker: cfg.MarkerKey,
		slotMarker: cfg.SlotMarker, streamMarker: cfg.StreamMarker, low: cfg.Low}
}

// slotKey is the slot's marker key: a cluster flight names the same slots'
// markers again and again.
func (p *planner) slotKey(slot int) string {
	if p.slotKeys == nil {
		p.slotKeys = make([]string, 16384)
	}
	if k := p.slotKeys[slot]; k != "" {
		return k
	}
	k := p.slotMarker(slot)
	p.slotKeys[slot] = k
	return k
}

// planFlight builds the groups of a flight, with their marker SETs encoded
// in the flight's arena.
//
// A fenced cluster master sends a flight of idempotent commands only (a
// snapshot's keys, see Batch.AddIdempotent) as if unfenced: no MULTI, EXEC
// or marker per slot touched, which is nearly one transaction per key while
// a snapshot streams in. Exactly once still holds: after a dropped
// connection such a flight counts as applied only as far as its replies
// were read (a marker written after a command that failed would vouch for
// it), the rest goes out again in order, and running it twice is harmless;
// the ledger sends no flight with other commands while one is outstanding
// (see ledger.takeNext), so nothing that must run once can have run after
// it.
func planFlight(bs []*Batch, p *planner) *flight {
	f := newFlight(bs)
	var lows map[int]int64
	low := func(stream int) int64 {
		if p.low == nil {
			return -1
		}
		l, ok := lows[stream]
		if !ok {
			if lows == nil {
				lows = map[int]int64{}
			}
			l = p.low(stream)
			lows[stream] = l
		}
		return l
	}
	// setMarkerAt encodes group gi's marker SET, recording pos of stream.
	setMarkerAt := func(gi int, stream int, pos Position) {
		g := &f.groups[gi]
		pos.Low = low(stream)
		g.seq = pos.Seq
		p.enc = pos.AppendEncode(p.enc[:0])
		start := len(f.arena)
		f.arena = resp.AppendArrayHeader(f.arena, 3)
		f.arena = resp.AppendBulk(f.arena, cmdSet)
		f.arena = resp.AppendBulkString(f.arena, g.marker)
		f.arena = resp.AppendBulk(f.arena, p.enc)
		g.set = [2]int{start, len(f.arena)}
	}
	// setMarker records unit seq at source offset off of b's stream.
	setMarker := func(gi int, b *Batch, seq uint64, off int64) {
		pos := b.Pos
		pos.Seq, pos.Offset = seq, off
		setMarkerAt(gi, b.Stream, pos)
	}
	total := 0
	for _, b := range bs {
		total += len(b.ops)
	}
	f.replay = p.replay && total > 0 && replayable(bs)
	if cap(f.opsBuf) < total {
		f.opsBuf = make([]opAt, 0, total)
	}
	flat := f.opsBuf[:0] // every group's ops, group after group
	if !p.slotted {
		// Standalone: one group per run of batches of one stream (a flight
		// holds the batches that were queued, see selectFlight), recording the
		// position of the run's last batch. A run's positions only grow:
		// a batch that records an earlier position (Confirm re-records the
		// last acknowledged one) starts a new group, so that no group's
		// marker is below a unit it applies.
		//
		// Fenced, a run is cut into transactions of about txnOps commands
		// or txnBytes at the unit boundaries its batches recorded
		// (Batch.cuts) or between its batches, each with its own marker
		// SET (see txnOps).
		for bi := 0; bi < len(bs); {
			b := bs[bi]
			key := b.markerOr(p.marker)
			end := bi + 1
			for end < len(bs) && bs[end].Stream == b.Stream && bs[end].markerOr(p.marker) == key && bs[end].Pos.Seq >= bs[end-1].Pos.Seq {
				end++
			}
			from := len(flat)
			closeAt := func(pos Position) {
				n := len(flat)
				f.groups = append(f.groups, group{ops: flat[from:n:n], marker: key, multi: p.fence && n > from})
				setMarkerAt(len(f.groups)-1, b.Stream, pos)
				from = n
			}
			size := 0 // the bytes of flat[from:]
			for bj := bi; bj < end; bj++ {
				cb, c := bs[bj], 0
				for i := range cb.ops {
					flat = append(flat, opAt{int32(bj), int32(i)})
					if p.split && c < len(cb.cuts) && cb.cuts[c].n == i+1 {
						if i+1 < len(cb.ops) {
							closeAt(cb.cuts[c].pos)
						}
						c++
					}
				}
				if n, cut := cb.bytesAfterCut(); cut {
					size = n
				} else {
					size += n
				}
				// Between batches the bytes bound the transaction too: a
				// batch of one folded command (an MSET of hundreds of pairs)
				// is one op, and up to 64 of them (~1 MiB) went in one EXEC,
				// which held the target's event loop for 20-30 ms.
				if p.split && bj+1 < end && (len(flat)-from >= txnOps || size >= txnBytes) {
					closeAt(cb.Pos)
					size = 0
				}
			}
			closeAt(bs[end-1].Pos)
			bi = end
		}
		return f
	}
	// Position updates: the last batch of each stream in the flight.
	positions := func() {
		lastOf := map[int]int{}
		for i, b := range bs {
			lastOf[b.Stream] = i
		}
		for i, b := range bs {
			if lastOf[b.Stream] == i {
				f.groups = append(f.groups, group{marker: p.streamMarker(b.Stream)})
				setMarker(len(f.groups)-1, b, b.Pos.Seq, b.Pos.Offset)
			}
		}
	}
	if !p.fence || f.replay {
		// Unfenced: everything in order, then the position updates.
		for bi, b := range bs {
			for i := range b.ops {
				flat = append(flat, opAt{int32(bi), int32(i)})
			}
		}
		if len(flat) > 0 {
			f.groups = append(f.groups, group{ops: flat})
		}
		positions()
		return f
	}
	// Cluster, fenced: one transaction per slot. Keyless commands (slot -1)
	// run alone and split the flight into segments, since everything before
	// them must run before and everything after them after. A segment's ops
	// are counted per slot first, then placed, so that each group's ops are
	// one run of flat.
	//
	// Every group carries its slot's marker SET, however few its commands:
	// it is the only proof that the group ran. When a connection drops with
	// flights unanswered, requeueAfterDrop counts a group applied only if
	// its marker holds its seq or a later one; a transaction without it
	// would be sent again and applied twice. The marker cannot be set by
	// another slot's transaction (MULTI cannot span slots) nor after the
	// EXEC (a drop in between is the same hole). A slot with no commands in
	// the flight gets no SET. So the fence's cost per flight is one
	// MULTI/SET/EXEC per slot touched, and the way to make it cheap is to
	// touch each slot with more commands per flight: see clusterHold.
	if p.slotGen == nil {
		p.slotGen = make([]uint32, 16384)
		p.slotGroup = make([]int32, 16384)
	}
	type last struct {
		b   int32
		seq uint64
		off int64
	}
	var (
		segFrom   opAt // first op of the segment
		segGroups = 0  // groups of the segment so far (f.groups[base:])
		base      = 0  // index in f.groups of the segment's first group
		counts    []int32
		lasts     []last
	)
	newSeg := func() {
		p.gen++
		if p.gen == 0 {
			clear(p.slotGen)
			p.gen = 1
		}
		base, segGroups = len(f.groups), 0
		counts, lasts = counts[:0], lasts[:0]
	}
	flushSeg := func(to opAt) {
		if segGroups == 0 {
			return
		}
		// Each group's run of flat starts where the previous one ends.
		at := int32(len(flat))
		for gi, n := range counts {
			f.groups[base+gi].ops = flat[at : at : at+n]
			at += n
		}
		flat = flat[:at]
		for bi := segFrom.b; bi <= to.b && int(bi) < len(bs); bi++ {
			ops := bs[bi].ops
			i0, i1 := int32(0), int32(len(ops))
			if bi == segFrom.b {
				i0 = segFrom.i
			}
			if bi == to.b {
				i1 = to.i
			}
			for i := i0; i < i1; i++ {
				slot := ops[i].slot
				gi := p.slotGroup[slot]
				g := &f.groups[base+int(gi)]
				g.ops = append(g.ops, opAt{bi, i})
			}
		}
		for gi := range segGroups {
			l := lasts[gi]
			setMarker(base+gi, bs[l.b], l.seq, l.off)
		}
	}
	newSeg()
	for bi, b := range bs {
		for i := range b.ops {
			o := &b.ops[i]
			if o.slot < 0 {
				flushSeg(opAt{int32(bi), int32(i)})
				flat = append(flat, opAt{int32(bi), int32(i)})
				n := len(flat)
				f.groups = append(f.groups, group{ops: flat[n-1 : n : n], marker: p.streamMarker(b.Stream), multi: true})
				setMarker(len(f.groups)-1, b, o.seq, o.off)
				newSeg()
				segFrom = opAt{int32(bi), int32(i + 1)}
				continue
			}
			if p.slotGen[o.slot] != p.gen {
				p.slotGen[o.slot] = p.gen
				p.slotGroup[o.slot] = int32(segGroups)
				segGroups++
				f.groups = append(f.groups, group{marker: p.slotKey(int(o.slot)), multi: true})
				counts = append(counts, 0)
				lasts = append(lasts, last{})
			}
			gi := p.slotGroup[o.slot]
			counts[gi]++
			lasts[gi] = last{int32(bi), o.seq, o.off}
		}
	}
	flushSeg(opAt{int32(len(bs) - 1), int32(len(bs[len(bs)-1].ops))})
	if len(f.groups) == 0 {
		positions()
	}
	return f
}

// standaloneSendOps bounds the commands of the batches a standalone writer
// coalesces into one flight (fenced: transactions of txnOps).
const standaloneSendOps = 8192

// txnOps and txnBytes are how much a fenced standalone transaction holds
// before the flight goes on in the next one (at a unit boundary). Redis
// keeps every queued command's arguments allocated until EXEC, so the
// longer the transaction, the colder the memory it runs from: on Redis
// 7.0.15 a transaction of 1024 small writes cost the target 0.25 µs more
// per command than the same writes without one, of 64 writes 0.08 µs more
// (MULTI, EXEC and the marker SET included).
const (
	txnOps   = 64
	txnBytes = 64 << 10
)

// standaloneHoldOps: a standalone writer with a flight outstanding holds
// back a queue of fewer commands than this (the batches an idle flush cut
// short) until the flight is answered; a longer queue (a backlog of full
// batches) is pipelined at once.
const standaloneHoldOps = 512

// sendLimits bound the flights the sender takes off the queue.
type sendLimits struct {
	slotted bool
	// fenced: a fenced cluster master (one transaction and one marker SET
	// per slot of a flight), whose queue waits behind a flight outstanding
	// (see selectFlight).
	fenced bool
	// oneByOne: a standalone flight holds one batch — under skipFenced, so
	// that a refused command's batch can be sent again alone, and under a
	// throttle, so that the limiter spaces batches evenly.
	oneByOne    bool
	maxSendOps  int
	maxInflight int64
	maxQueued   int64 // what submit lets queue up (0: no bound known)
}

// selectFlight is how many batches at the head of queue (and how many bytes)
// go out as the next flight, with inflightBytes in inflight flights already
// sent; 0: a short standalone queue waits for the flight outstanding.
func (l sendLimits) selectFlight(queue []*Batch, inflightBytes int64, inflight int) (n, size int) {
	n, ops, size := 1, queue[0].Len(), queue[0].Size()
	maxOps, maxBytes, coalesce := l.maxSendOps, l.maxInflight/2, l.slotted
	if !l.slotted && !l.oneByOne {
		// Standalone: queued batches go out as one flight (see
		// planFlight), of a bounded size, so that what is in flight stays
		// within maxInflight.
		maxOps, maxBytes, coalesce = min(maxOps, standaloneSendOps), min(maxBytes, l.maxInflight-inflightBytes), true
	}
	if coalesce {
		for n < len(queue) && ops+queue[n].Len() <= maxOps && int64(size+queue[n].Size()) <= maxBytes {
			ops += queue[n].Len()
			size += queue[n].Size()
			n++
		}
	}
	if !l.slotted && coalesce && n == len(queue) && ops < standaloneHoldOps && inflight > 0 {
		// A standalone flight is answered soon: a short queue waits for it,
		// to go out with what comes meanwhile as one larger flight (fewer
		// transactions, syscalls and wake-ups under a steady load). An idle
		// target gets every batch at once, a backlog is pipelined.
		return 0, 0
	}
	if l.fenced && l.slotted && !l.oneByOne && n == len(queue) && inflight > 0 && l.clusterHold(ops, size) {
		// A fenced cluster flight costs a MULTI, an EXEC and a marker SET
		// per slot it touches, whatever the slot's share of its commands:
		// with keys spread over a master's thousands of slots, a flight of
		// a few batches is mostly fence (about 2.6 commands per
		// transaction while draining a backlog, each transaction costing
		// the target about 5 commands' worth). While a flight is
		// outstanding the queue waits, until that flight is answered or
		// the queue is long enough to keep the target busy on its own: the
		// more a flight holds, the bigger each slot's group. An idle
		// target still gets every batch at once, and a steady load waits
		// at most one round trip.
		return 0, 0
	}
	return n, size
}

// clusterHold says whether a fenced cluster queue of ops commands and size
// bytes waits for the flight outstanding: below a full flight (maxSendOps)
// and three quarters of what may be queued (submit blocks at maxQueued: the
// queue goes before the applier has to wait).
func (l sendLimits) clusterHold(ops, size int) bool {
	if ops >= l.maxSendOps {
		return false
	}
	return l.maxQueued <= 0 || int64(size) < l.maxQueued*3/4
}

// wire puts a session's flights on its connection. On a standalone target
// each command runs in its db, selected when it changes, and the markers
// are written in markerDB.
type wire struct {
	slotted  bool
	markerDB int
	curDB    int    // the db the connection is in; -2: unknown
	sel      []byte // scratch for a SELECT
}

// layout lists the items of every group of f — what each reply answers —
// and sizes f, before any of it is sent (the reply reader must find them).
func (c *wire) layout(f *flight) {
	curDB := c.curDB
	var size int64
	nops := 0
	for gi := range f.groups {
		nops += len(f.groups[gi].ops)
	}
	// One array holds every group's items (a standalone batch that switches
	// dbs often may outgrow it: the groups already laid out keep theirs).
	if n := nops + 2*len(f.groups); cap(f.itemsBuf) < n {
		f.itemsBuf = make([]int32, 0, n)
	}
	items := f.itemsBuf[:0]
	for gi := range f.groups {
		g := &f.groups[gi]
		g.items = items[len(items):]
		if g.multi {
			curDB = -2 // a group selects its own dbs: if it is aborted, none of its SELECTs ran
		}
		for k, o := range g.ops {
			ref := f.batches[o.b].ops[o.i]
			if !c.slotted && ref.db >= 0 && int(ref.db) != curDB {
				g.items = append(g.items, itemInternal)
				curDB = int(ref.db)
				size += 24
			}
			g.items = append(g.items, int32(k))
			size += int64(f.batches[o.b].opLen(int(o.i)))
		}
		if !c.slotted && curDB != c.markerDB {
			g.items = append(g.items, itemInternal)
			curDB = c.markerDB
		}
		if g.marker != "" {
			g.items = append(g.items, itemInternal)
		}
		n := len(g.items)
		items, g.items = g.items[n:], g.items[:n:n]
	}
	f.size = size + int64(len(f.arena)) + int64(32*len(f.groups))
}

// emit hands put the bytes of f, laid out, in order.
func (c *wire) emit(f *flight, put func([]byte)) {
	sel := c.sel[:0]
	defer func() { c.sel = sel }()
	for gi := range f.groups {
		g := &f.groups[gi]
		if g.multi {
			put(cmdMulti)
			c.curDB = -2
		}
		// Commands that follow each other in their batch's buffer go out
		// in one write.
		var runB *Batch
		runStart, runEnd := 0, 0
		flushRun := func() {
			if runB != nil {
				put(runB.buf[runStart:runEnd])
				runB = nil
			}
		}
		for _, o := range g.ops {
			b := f.batches[o.b]
			ref := b.ops[o.i]
			if d := int(ref.db); !c.slotted && d >= 0 && d != c.curDB {
				flushRun()
				sel = appendSelect(sel[:0], d)
				put(sel)
				c.curDB = d
			}
			if ref.splice > 0 {
				flushRun()
				b.eachPart(int(o.i), put)
				continue
			}
			if b == runB && ref.start == runEnd {
				runEnd = ref.end
				continue
			}
			flushRun()
			runB, runStart, runEnd = b, ref.start, ref.end
		}
		flushRun()
		if !c.slotted && c.curDB != c.markerDB {
			put(appendSelect(sel[:0], c.markerDB))
			c.curDB = c.markerDB
		}
		if g.marker != "" {
			put(f.arena[g.set[0]:g.set[1]])
		}
		if g.multi {
			put(cmdExec)
		}
	}
}
