package writer

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
)

// Batch is what a producer hands a writer: commands already encoded as RESP,
// each with the db (standalone) or slot (cluster) it belongs to and the unit
// of the source it came from, and the position the target reaches once the
// whole batch is applied.
//
// A unit is what must be applied all or nothing: one source command, one
// source transaction, or one command of a rewritten snapshot key. Units are
// numbered by the producer (Seq) in source order; the fence markers on the
// target record these numbers, so after a dropped connection the target
// itself tells which units it applied.
type Batch struct {
	buf []byte
	ops []opRef
	// Pos is where the target stands once this batch is applied; Pos.Seq is
	// the number of its last unit.
	Pos Position
	// MarkerKey records Pos on a standalone target ("" = the writer's
	// default). Several source shards writing into one standalone target
	// each keep their own marker.
	MarkerKey string
	// Stream is the source shard the batch comes from: positions are kept
	// per stream, since offsets of different shards do not compare.
	Stream int
	marked int // ops[:marked] have their unit set
	idem   int // ops added by AddIdempotent
	// cuts are unit boundaries, one every txnOps commands or txnBytes
	// bytes, where a fenced standalone flight ends one transaction and
	// begins the next (see planFlight).
	cuts []cut
	// splices are the bodies of the ops added by AddIdempotentSpliced, in
	// op order; spliced counts their bytes, which are not in buf.
	splices []splice
	spliced int
}

// cut: ops[:n] are whole units that bring the target to pos; spliced was
// the batch's spliced bytes then.
type cut struct {
	n       int
	pos     Position
	spliced int
}

// splice is the middle of an op that the batch sends from where it lies:
// the op's bytes are buf[start:mid], body, buf[mid:end].
type splice struct {
	mid     int
	body    [][]byte
	n       int
	release func()
}

type opRef struct {
	start, end int
	db         int32 // -1: any db (FLUSHALL, FUNCTION, SWAPDB…)
	slot       int32 // -1: none (standalone target, or a keyless command on a cluster)
	seq        uint64
	off        int64    // source offset at the end of the op's unit
	idem       bool     // added by AddIdempotent
	fold       foldKind // set by MarkFold: a later op may join it (see fold)
	joined     uint16   // source commands fold joined into this one (0: not joined), for the errors that name it
	splice     int32    // 0: all in buf; k: splices[k-1] holds its middle
}

// Released batches wait in two pools by the size of their buffer: a
// producer that asks for room (a snapshot's batches, hundreds of KiB each)
// then gets a buffer that holds it, not one of the many empty batches that
// only carried a position. A buffer taken from the heap instead is fresh
// memory, which the kernel must fault in page by page.
var (
	batchPool    = sync.Pool{New: func() any { return &Batch{} }}
	bigBatchPool sync.Pool
)

// bigBatch is the smallest buffer kept in bigBatchPool.
const bigBatch = 32 << 10

// NewBatch returns an empty batch, possibly recycled.
func NewBatch() *Batch {
	b := batchPool.Get().(*Batch)
	b.reset()
	return b
}

// NewBatchSized returns an empty batch with room for n bytes of commands,
// recycled when one of that size is free.
func NewBatchSized(n int) *Batch {
	b, ok := (*Batch)(nil), false
	if n >= bigBatch {
		b, ok = bigBatchPool.Get().(*Batch)
	}
	if !ok {
		b = batchPool.Get().(*Batch)
	}
	b.reset()
	if cap(b.buf) < n {
		b.buf = make([]byte, 0, n) // what it held is not kept: no copy
	}
	return b
}

func (b *Batch) reset() {
	b.buf = b.buf[:0]
	b.ops = b.ops[:0]
	b.Pos = Position{}
	b.MarkerKey = ""
	b.Stream = 0
	b.marked = 0
	b.idem = 0
	b.cuts = b.cuts[:0]
	b.splices = b.splices[:0]
	b.spliced = 0
}

// markerOr is the key of the marker recording b on a standalone target.
func (b *Batch) markerOr(def string) string {
	if b.MarkerKey != "" {
		return b.MarkerKey
	}
	return def
}

// Release returns b to the pool, and the bodies of its spliced ops to
// their owners. The caller must not use it afterwards.
func (b *Batch) Release() {
	b.dropSplices(0)
	switch c := cap(b.buf); {
	case c > 8<<20:
		b.buf = nil // do not keep a huge RESTORE buffer alive
		batchPool.Put(b)
	case c >= bigBatch:
		bigBatchPool.Put(b)
	default:
		batchPool.Put(b)
	}
}

// Len is the number of commands in the batch.
func (b *Batch) Len() int { return len(b.ops) }

// Size is the number of encoded bytes in the batch.
func (b *Batch) Size() int { return len(b.buf) + b.spliced }

func (b *Batch) push(start, db, slot int) {
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: int32(db), slot: int32(slot)})
}

// Add appends one command to run in db (-1: any db).
func (b *Batch) Add(db int, args ...[]byte) {
	start := len(b.buf)
	b.buf = resp.AppendCommand(b.buf, args...)
	b.push(start, db, -1)
}

// AddSlot appends one command for a cluster target: it runs on the master
// owning slot (-1: on every master, e.g. FLUSHALL), in db 0.
func (b *Batch) AddSlot(slot int, args ...[]byte) {
	start := len(b.buf)
	b.buf = resp.AppendCommand(b.buf, args...)
	b.push(start, 0, slot)
}

// AddStrings is Add for string arguments.
func (b *Batch) AddStrings(db int, args ...string) {
	start := len(b.buf)
	b.buf = resp.AppendCommandStrings(b.buf, args...)
	b.push(start, db, -1)
}

// AddEncoded appends one command that is already RESP-encoded.
func (b *Batch) AddEncoded(db, slot int, enc []byte) {
	start := len(b.buf)
	b.buf = append(b.buf, enc...)
	b.push(start, db, slot)
}

// MarkFold says that the command just added is c, and marks it when c is of
// router.Fold or router.FoldKeys. When it is a unit of its own, right after
// a unit that ended with a command it may join in the same db or slot,
// EndUnit sends the two as one: see fold.
func (b *Batch) MarkFold(c *router.Command) {
	k := foldNone
	switch {
	case c.Has(router.Fold):
		k = foldKey
	case c.Has(router.FoldKeys):
		k = foldKeys
	default:
		return
	}
	if n := len(b.ops); n > 0 && b.ops[n-1].splice == 0 && !b.ops[n-1].idem {
		b.ops[n-1].fold = k
	}
}

// AddWith appends one command that the caller encodes itself into the
// batch's buffer (a RESTORE whose payload is written straight from the RDB
// record). encode must append exactly one complete RESP command to dst.
func (b *Batch) AddWith(db, slot int, encode func(dst []byte) ([]byte, error)) error {
	start := len(b.buf)
	out, err := encode(b.buf)
	if err != nil {
		b.buf = b.buf[:start]
		return err
	}
	b.buf = out
	b.push(start, db, slot)
	return nil
}

// AddIdempotent is AddWith for a command that has the effect of running once
// however often it runs, in order with those around it: the SET or RESTORE
// … REPLACE ABSTTL of a snapshot's key (a whole value, an absolute expiry).
// A flight of nothing else goes out without the fence (see planFlight).
func (b *Batch) AddIdempotent(db, slot int, encode func(dst []byte) ([]byte, error)) error {
	if err := b.AddWith(db, slot, encode); err != nil {
		return err
	}
	b.ops[len(b.ops)-1].idem = true
	b.idem++
	return nil
}

// Spliced is a command that a batch takes without copying its middle: a
// RESTORE of a big value, whose payload goes to the target from the chunks
// it was read into. Copied into the batch's buffer, a 27 MB value cost a
// fresh 27 MB buffer — cleared, faulted in page by page, then filled — and
// with a few such keys 6 % of ferry's CPU in a cluster full sync.
type Spliced struct {
	Head, Tail []byte   // copied into the batch
	Body       [][]byte // sent from where it lies, between Head and Tail
	// Release, if set, hands Body back once the batch no longer needs it
	// (sent and answered, or dropped). It is called once.
	Release func()
}

// Free releases s's body: for a caller that could not add it.
func (s Spliced) Free() {
	if s.Release != nil {
		s.Release()
	}
}

// AddIdempotentSpliced is AddIdempotent for a Spliced command. The batch
// owns s.Body from here on (even when ferry later sends the command again,
// it reads Body), and releases it with the batch.
func (b *Batch) AddIdempotentSpliced(db, slot int, s Spliced) {
	start := len(b.buf)
	b.buf = append(b.buf, s.Head...)
	mid := len(b.buf)
	b.buf = append(b.buf, s.Tail...)
	n := 0
	for _, p := range s.Body {
		n += len(p)
	}
	b.splices = append(b.splices, splice{mid: mid, body: s.Body, n: n, release: s.Release})
	b.spliced += n
	b.push(start, db, slot)
	o := &b.ops[len(b.ops)-1]
	o.splice = int32(len(b.splices))
	o.idem = true
	b.idem++
}

// dropSplices releases the bodies of splices[k:] and forgets them.
func (b *Batch) dropSplices(k int) {
	for _, s := range b.splices[k:] {
		b.spliced -= s.n
		if s.release != nil {
			s.release()
		}
	}
	clear(b.splices[k:])
	b.splices = b.splices[:k]
}

// opLen is the number of bytes of command i.
func (b *Batch) opLen(i int) int {
	o := b.ops[i]
	n := o.end - o.start
	if o.splice > 0 {
		n += b.splices[o.splice-1].n
	}
	return n
}

// bytesAfter is the size of the commands after cut c.
func (b *Batch) bytesAfter(c cut) int {
	return len(b.buf) + b.spliced - b.ops[c.n-1].end - c.spliced
}

// bytesAfterCut is the size of the commands after the batch's last cut
// inside it (a cut at its end is not one: see planFlight), and whether it
// has one; without one, the size of all.
func (b *Batch) bytesAfterCut() (int, bool) {
	for k := len(b.cuts) - 1; k >= 0; k-- {
		if c := b.cuts[k]; c.n < len(b.ops) {
			return b.bytesAfter(c), true
		}
	}
	return len(b.buf) + b.spliced, false
}

// replayable reports whether every command of b was added by AddIdempotent
// (an empty batch only carries a position, which its marker SET records
// the same however often it runs).
func (b *Batch) replayable() bool { return b.idem == len(b.ops) }

// EndUnit assigns the commands added since the last EndUnit to the unit
// numbered pos.Seq, which brings the target to pos.
func (b *Batch) EndUnit(pos Position) {
	b.fold()
	for i := b.marked; i < len(b.ops); i++ {
		b.ops[i].seq, b.ops[i].off = pos.Seq, pos.Offset
	}
	b.marked = len(b.ops)
	from, size := 0, len(b.buf)+b.spliced
	if k := len(b.cuts); k > 0 {
		from, size = b.cuts[k-1].n, b.bytesAfter(b.cuts[k-1])
	}
	if len(b.ops)-from >= txnOps || size >= txnBytes {
		b.cuts = append(b.cuts, cut{n: len(b.ops), pos: pos, spliced: b.spliced})
	}
}

// foldBytes bounds a folded command: a transaction is cut only between
// commands (txnBytes), and the target reads and queues it whole.
const foldBytes = 16 << 10

// foldKind is how a marked command joins the one before it.
type foldKind uint8

const (
	foldNone foldKind = iota
	// foldKey: "LPUSH k a" and "LPUSH k b" are "LPUSH k a b" (router.Fold).
	foldKey
	// foldKeys: "DEL a" and "DEL b" are "DEL a b"; "SET a 1" and "SET b 2"
	// are "MSET a 1 b 2" (router.FoldKeys).
	foldKeys
)

var (
	nameSET  = []byte("SET")
	nameMSET = []byte("MSET")
	bulkMSET = []byte("$4\r\nMSET\r\n")
)

// fold joins the unit being ended to the command before it when each of
// the two is a unit of its own, both are marked alike (MarkFold), they may
// join (the same command and key for foldKey, the same command or SET into
// MSET for foldKeys) in the same db or slot, and no transaction cut lies
// between them. The target is left as the two would leave it for less: one
// command to look up, queue, run, propagate and answer in place of many
// (2M pushes took Redis 0.5–0.7x the CPU folded, 1M SETs in MULTI 0.7x as
// MSETs; bench/PROFILE.md, sections 23 and 24).
//
// The joined command takes the new unit: a marker records a position only
// at a cut or a batch's end, never inside it, and the unit before has ended,
// so no Truncate can reach into it. A refusal (a key of another type, no
// memory) would have refused each part alike; it is now one refusal.
func (b *Batch) fold() {
	n := len(b.ops)
	if n < 2 || b.marked != n-1 {
		return
	}
	prev, cur := &b.ops[n-2], &b.ops[n-1]
	if prev.fold == foldNone || prev.fold != cur.fold || prev.db != cur.db || prev.slot != cur.slot ||
		prev.end != cur.start || prev.end-prev.start+cur.end-cur.start > foldBytes {
		return
	}
	if k := len(b.cuts); k > 0 && b.cuts[k-1].n == n-1 {
		return
	}
	if n > 2 && b.ops[n-3].seq == prev.seq {
		return // prev is the end of a source transaction: it stays whole
	}
	p, c := b.buf[prev.start:prev.end], b.buf[cur.start:cur.end]
	var hb [32]byte
	var h []byte   // the joined command's head
	var pk, ck int // p[pk:] and c[ck:] follow it
	if cur.fold == foldKey {
		pn, ph, _, ok := resp.CommandPrefix(p, 0)
		cn, ch, cp, ok2 := resp.CommandPrefix(c, 2) // the command's name and its key
		if !ok || !ok2 || len(p) < ph+cp-ch || string(p[ph:ph+cp-ch]) != string(c[ch:cp]) {
			return
		}
		h, pk, ck = resp.AppendArrayHeader(hb[:0], pn+cn-2), ph, cp
	} else {
		pn, ph, pp, ok := resp.CommandPrefix(p, 1)
		cn, ch, cp, ok2 := resp.CommandPrefix(c, 1)
		if !ok || !ok2 {
			return
		}
		h, pk, ck = resp.AppendArrayHeader(hb[:0], pn+cn-1), pp, cp
		pName, cName := bulkBody(p[ph:pp]), bulkBody(c[ch:cp])
		switch {
		case isPair(pName, pn) && isPair(cName, cn):
			h = append(h, bulkMSET...)
		case setsPairs(pName) || setsPairs(cName):
			// A SET or MSET whose count on the wire is not of pairs (the
			// flag came from the source's arguments, a rewrite may have
			// added some): it stays as it is.
			return
		case bytes.EqualFold(pName, cName) && pp-ph <= len(hb)-len(h):
			h = append(h, p[ph:pp]...)
		default:
			return
		}
	}
	// The new head is at most a few bytes longer than what it replaces of
	// p, and c's own head, name (and key) that it drops are longer than
	// that: c's arguments move left (or stay), p's right by the
	// difference, into room they free. p stays where it is unless its
	// head grew (a digit more in the count, SET into MSET): a run of n
	// joins then copies O(n) bytes, not O(n²) — copy does not skip a move
	// onto itself.
	if len(h) < pk || len(h)-pk > ck {
		return
	}
	args := c[ck:]
	at := prev.start + len(h) + len(p) - pk
	copy(b.buf[at:], args)
	if len(h) != pk {
		copy(b.buf[prev.start+len(h):], b.buf[prev.start+pk:prev.end])
	}
	copy(b.buf[prev.start:], h)
	prev.end = at + len(args)
	prev.joined = max(prev.joined, 1)
	if prev.joined < math.MaxUint16 {
		prev.joined++
	}
	b.buf = b.buf[:prev.end]
	b.ops = b.ops[:n-1]
	b.marked = n - 2
}

// setsPairs: name is SET or MSET.
func setsPairs(name []byte) bool {
	return bytes.EqualFold(name, nameSET) || bytes.EqualFold(name, nameMSET)
}

// isPair: name with argc arguments (its own name included) is "SET k v" or
// "MSET k v …", which set their pairs alike.
func isPair(name []byte, argc int) bool {
	return bytes.EqualFold(name, nameSET) && argc == 3 || bytes.EqualFold(name, nameMSET) && argc%2 == 1
}

// bulkBody is the body of one bulk string "$n\r\nbody\r\n" that
// resp.CommandPrefix has measured.
func bulkBody(bulk []byte) []byte {
	return bulk[bytes.IndexByte(bulk, '\n')+1 : len(bulk)-2]
}

// Truncate drops every command from the n-th on (an unfinished unit).
func (b *Batch) Truncate(n int) {
	if n >= len(b.ops) {
		return
	}
	n = max(n, 0)
	k := len(b.splices)
	for i := n; i < len(b.ops); i++ {
		if s := b.ops[i].splice; s > 0 {
			k = int(s) - 1
			break
		}
	}
	b.dropSplices(k)
	if n == 0 {
		b.buf = b.buf[:0]
		b.ops = b.ops[:0]
	} else {
		b.buf = b.buf[:b.ops[n-1].end]
		b.ops = b.ops[:n]
	}
	b.marked = min(b.marked, len(b.ops))
	b.idem = countIdem(b.ops)
	for len(b.cuts) > 0 && b.cuts[len(b.cuts)-1].n > len(b.ops) {
		b.cuts = b.cuts[:len(b.cuts)-1]
	}
}

// op returns the encoded bytes of command i: a copy when it is spliced.
func (b *Batch) op(i int) []byte {
	o := b.ops[i]
	if o.splice == 0 {
		return b.buf[o.start:o.end]
	}
	out := make([]byte, 0, b.opLen(i))
	b.eachPart(i, func(p []byte) { out = append(out, p...) })
	return out
}

// eachPart hands put the bytes of command i in order, without copying them.
func (b *Batch) eachPart(i int, put func([]byte)) {
	o := b.ops[i]
	if o.splice == 0 {
		put(b.buf[o.start:o.end])
		return
	}
	s := b.splices[o.splice-1]
	put(b.buf[o.start:s.mid])
	for _, p := range s.body {
		put(p)
	}
	put(b.buf[s.mid:o.end])
}

// Command returns the encoding of command i and the db it runs in (-1: any
// db). The bytes belong to the batch.
func (b *Batch) Command(i int) (enc []byte, db int) {
	return b.op(i), int(b.ops[i].db)
}

// Describe names command i for an error message: the command and its key,
// never its values (they may be large or secret).
func (b *Batch) Describe(i int) string {
	args, err := resp.ParseCommand(b.op(i))
	if err != nil || len(args) == 0 {
		return fmt.Sprintf("command #%d of a batch", i)
	}
	c, err := router.Parse(args)
	name := c.Name
	if name == "" {
		name = strings.ToUpper(string(args[0]))
	}
	// A folded command is not one the source ran: say so, or a refused
	// MSET puzzles whoever only ever sent SETs.
	joined := ""
	if n := b.ops[i].joined; n > 0 {
		joined = fmt.Sprintf("; %d source commands joined, see fold", n)
	}
	key := []byte(nil)
	switch {
	case err == nil && len(c.Keys) > 0:
		key = c.Key(0)
	case errors.Is(err, router.ErrUnknownCommand) && len(args) > 1:
		key = args[1] // a module's command: its first argument is most likely the key
	default:
		return name
	}
	if b.ops[i].slot >= 0 {
		return fmt.Sprintf("%s %q (slot %d%s)", name, clipKey(key), b.ops[i].slot, joined)
	}
	return fmt.Sprintf("%s %q (db %d%s)", name, clipKey(key), b.ops[i].db, joined)
}

// Op is one command taken out of a batch to be routed again (after a
// MOVED): its encoding and where it came from.
type Op struct {
	Enc    []byte
	DB     int
	Slot   int
	Seq    uint64
	Off    int64
	Stream int
	Pos    Position // the position of the batch it came from (replid, state)
}

// Args decodes the command.
func (o Op) Args() [][]byte {
	args, _ := resp.ParseCommand(o.Enc)
	return args
}

func (b *Batch) takeOp(i int) Op {
	o := b.ops[i]
	enc := b.op(i)
	if o.splice == 0 {
		enc = append([]byte(nil), enc...) // a spliced op's is a copy already
	}
	return Op{Enc: enc, DB: int(o.db), Slot: int(o.slot), Seq: o.seq, Off: o.off, Stream: b.Stream, Pos: b.Pos}
}

// AddOp appends an op taken from another batch, keeping its unit.
func (b *Batch) AddOp(o Op) {
	start := len(b.buf)
	b.buf = append(b.buf, o.Enc...)
	b.ops = append(b.ops, opRef{start: start, end: len(b.buf), db: int32(o.DB), slot: int32(o.Slot), seq: o.Seq, off: o.Off})
	b.marked = len(b.ops)
}

// without returns a new batch holding every command of b except those in
// drop, with the same position and marker.
func (b *Batch) without(drop func(i int) bool) *Batch {
	nb := NewBatch()
	c := 0
	for i := range b.ops {
		if !drop(i) {
			start := len(nb.buf)
			nb.buf = append(nb.buf, b.op(i)...)
			o := b.ops[i]
			o.start, o.end, o.splice = start, len(nb.buf), 0 // a spliced op is copied whole
			nb.ops = append(nb.ops, o)
		}
		// The transaction cuts stay where they fall among the commands
		// kept: a batch sent again after a dropped connection is still
		// applied in transactions of about txnOps.
		for ; c < len(b.cuts) && b.cuts[c].n == i+1; c++ {
			if n := len(nb.ops); n > 0 && (len(nb.cuts) == 0 || nb.cuts[len(nb.cuts)-1].n < n) {
				nb.cuts = append(nb.cuts, cut{n: n, pos: b.cuts[c].pos})
			}
		}
	}
	nb.marked = len(nb.ops)
	nb.idem = countIdem(nb.ops)
	nb.Pos = b.Pos
	nb.MarkerKey = b.MarkerKey
	nb.Stream = b.Stream
	return nb
}

func countIdem(ops []opRef) int {
	n := 0
	for _, o := range ops {
		if o.idem {
			n++
		}
	}
	return n
}

func clipKey(k []byte) string {
	if len(k) > 128 {
		return string(k[:128]) + "…"
	}
	return string(k)
}
