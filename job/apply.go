package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/filter"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/target"
	"github.com/ferry-dev/ferry/writer"
)

// sink receives the applier's commands and cuts them into batches for the
// target's writers (see target.Sink).
type sink interface {
	Add(ctx context.Context, db int, c *router.Command) error
	AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error
	AddRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error
	EndUnit(ctx context.Context, pos writer.Position) error
	DropUnit()
	Flush(ctx context.Context) error
}

// applier turns snapshot records and stream commands into target commands.
type applier struct {
	job    *job
	stream int // the source shard this applier serves
	out    sink
	log    zerolog.Logger

	dbMap  map[int]int
	filter *filter.Filter // nil: copy everything
	moves  *moves         // cluster source: slot migrations between streams

	// table parses the commands: the built-in one, extended from the
	// source's COMMAND when it answers; known are the target's commands
	// (nil: not known, every command is sent).
	table *router.Table
	known *router.Known
	// cur is the stream command at hand, parsed once: the filter, the move
	// registry and the sink all read it (none keeps it past its call).
	cur router.Command

	// waitApplied waits until stream's units up to seq are applied on the
	// target (see moves).
	waitApplied func(ctx context.Context, stream int, seq uint64) error
	// lastSeq is the number of the last unit this applier ended; flushed is
	// how far its batches are submitted; flushReq asks it to submit all it
	// holds at its next unit boundary (another stream waits for it).
	lastSeq   uint64
	flushed   atomic.Uint64
	flushReq  atomic.Bool
	flushNote notifier // flushed moved
	jobName   string   // the job's name: its own keys on the target (see ownKey)
	skipErr   bool     // on_error = skip (a command the filter refuses)
	restore   conf.Restore
	fenced    bool
	tgtRDB    int   // target's RDB version (0: unknown)
	maxBulk   int64 // target's proto-max-bulk-len
	rewrite   rdb.RewriteOptions
	ackNow    func()
	snapshot  bool // applying a snapshot now
	// seq numbers units across the whole job (all source shards), above
	// every marker found on the target at start.
	seq *atomic.Uint64
	// resumed: the stream continues a position recorded on the target
	// (after a restart); false again after any full resync. replIDs are the
	// replication histories of the source node it resumed on.
	resumed bool
	replIDs [2]string

	// snapshot state
	srcRDB     int
	useRestore bool
	sweep      *keySet // keys of this snapshot, when a sweep must follow

	// stream state
	replid string
	offset int64     // last byte of the stream processed
	recv   time.Time // when ferry received the command at hand
	// raw is the command at hand as the source encoded it, exactly as
	// resp.AppendCommand encodes its args (nil: not known); sent as it is
	// when nothing rewrites the command.
	raw  []byte
	db   int // db the stream has selected
	inTx bool
	// routing: a unit is between moves.enter and moves.exit; unitSlots are
	// the slots its commands touched, noted at its end.
	routing   bool
	unitSlots []int

	// dataEnd is the end offset of the last stream command that changed
	// data (not a PING, PUBLISH, REPLCONF or SELECT), as published by the
	// consumer (see stream.publish) for rewind; dataEndAt is the consumer's
	// own, up to date. setDataEnd sets both.
	dataEnd   atomic.Int64
	dataEndAt int64

	keys, expired, commands, skipped, filtered atomic.Int64
	empty                                      atomic.Int64 // empty collections skipped
	fieldTTLs                                  atomic.Int64 // hash field TTLs dropped (on_unsupported = drop)
	functions                                  atomic.Int64 // function libraries dropped (on_unsupported = drop)
	modules                                    atomic.Int64 // module values dropped (on_unsupported = drop)
	// noFieldTTL: the target cannot hold per-field hash TTLs (it does
	// not know HPEXPIREAT); noFunctions: it has no functions (no FUNCTION:
	// Redis < 7.0); noModules: it has no modules loaded; dropFieldTTL:
	// on_unsupported = drop, for all three.
	noFieldTTL, noFunctions, noModules, dropFieldTTL bool
	warnedModuleAux                                  bool
}

// mapDB applies db_map; a source db not in a non-empty map keeps its number.
func (a *applier) mapDB(db int) int {
	if t, ok := a.dbMap[db]; ok {
		return t
	}
	return db
}

// setDataEnd sets dataEnd, published at once.
func (a *applier) setDataEnd(off int64) {
	a.dataEndAt = off
	a.dataEnd.Store(off)
}

// The applier is the target.Feed of its sink: what the sink reads of the
// command at hand.

func (a *applier) Stream() int        { return a.stream }
func (a *applier) Offset() int64      { return a.offset }
func (a *applier) Resumed() bool      { return a.resumed }
func (a *applier) ReplIDs() [2]string { return a.replIDs }

// beginSnapshot prepares for a new snapshot at (replid, offset).
func (a *applier) beginSnapshot(replid string, offset int64, sweep bool) {
	a.snapshot = true
	a.resumed = false
	a.setDataEnd(offset)
	a.replid, a.offset, a.db, a.inTx = replid, offset, 0, false
	a.unitSlots = a.unitSlots[:0] // the unfinished unit is dropped: nothing of it to note
	a.endRouting(0)
	a.srcRDB = 0
	a.sweep = nil
	if sweep {
		a.sweep = newKeySet()
	}
}

func (a *applier) snapshotPos() writer.Position {
	a.lastSeq = a.seq.Add(1)
	return writer.Position{Seq: a.lastSeq, State: writer.StateSnapshot, ReplID: a.replid, Offset: a.offset}
}

func (a *applier) livePos() writer.Position {
	a.lastSeq = a.seq.Add(1)
	return writer.Position{Seq: a.lastSeq, State: writer.StateLive, ReplID: a.replid, Offset: a.offset, DB: a.db}
}

// flush submits everything the applier holds, at a unit boundary.
func (a *applier) flush(ctx context.Context) error {
	if err := a.out.Flush(ctx); err != nil {
		return err
	}
	a.flushed.Store(a.lastSeq)
	a.flushNote.notify()
	return nil
}

// fieldTTLError refuses a hash with per-field TTLs for a target that cannot
// hold them: before its first command, so the target never holds the hash
// without them unless the user asked for that.
func fieldTTLError(rec *rdb.Record) error {
	return fault.PermanentErr("", "", `migrate into Redis 7.4+ (or Valkey 9+), or set on_unsupported = "drop" to copy the hashes without their field TTLs (counted)`,
		fmt.Errorf("source hash %q (db %d) has per-field TTLs, which the target cannot hold (it does not know HPEXPIREAT)", router.Clip(rec.Key), rec.DB))
}

// record applies one snapshot record.
func (a *applier) record(ctx context.Context, rec *rdb.Record, version int) error {
	if a.srcRDB == 0 {
		a.srcRDB = version
		switch a.restore {
		case conf.RestoreAlways:
			a.useRestore = true
		case conf.RestoreNever:
			a.useRestore = false
		default:
			a.useRestore = a.tgtRDB >= version
		}
		mode := "restore"
		if !a.useRestore {
			mode = "rewrite"
		}
		a.log.Info().Int("source_rdb", version).Int("target_rdb", a.tgtRDB).Str("mode", mode).Msg("snapshot format")
	}
	switch rec.Kind {
	case rdb.KindKey:
		if !a.filter.Record(rec.DB, rec.Key, rdb.TypeName(rec.Type)) {
			a.filtered.Add(1)
			return nil
		}
		return a.key(ctx, rec, version)
	case rdb.KindFunction:
		if !a.filter.Functions() {
			return nil
		}
		if a.noFunctions {
			if a.dropFieldTTL {
				a.functions.Add(1)
				return nil
			}
			return fault.PermanentErr("", "", `migrate into Redis 7.0+, or set on_unsupported = "drop" to copy the data without the function libraries (counted)`,
				errors.New("the source has function libraries, which the target cannot hold (it does not know FUNCTION)"))
		}
		if err := a.addArgs(ctx, -1, [][]byte{[]byte("FUNCTION"), []byte("LOAD"), []byte("REPLACE"), rec.Code}); err != nil {
			return err
		}
		return a.out.EndUnit(ctx, a.snapshotPos())
	case rdb.KindModuleAux:
		if !a.warnedModuleAux {
			a.warnedModuleAux = true
			a.log.Warn().Msg("the snapshot holds module auxiliary data; ferry cannot transfer it (module values themselves are restored)")
		}
	}
	return nil
}

func (a *applier) key(ctx context.Context, rec *rdb.Record, version int) error {
	if rec.Empty() {
		// Redis skips these when it loads an RDB, and refuses their RESTORE.
		if n := a.empty.Add(1); n <= 10 {
			a.log.Warn().Int("db", rec.DB).Str("key", router.Clip(rec.Key)).Msg("skipping an empty collection, as Redis does when it loads an RDB")
		}
		return nil
	}
	if rec.ExpireMs > 0 && rec.ExpireMs <= time.Now().UnixMilli() {
		a.expired.Add(1)
		return nil
	}
	if target.OwnKey(a.jobName, rec.Key) {
		return target.OwnKeyError(a.jobName, rec.DB, rec.Key)
	}
	if a.noModules && isModule(rec.Type) {
		if a.dropFieldTTL {
			a.modules.Add(1)
			return nil
		}
		return fault.PermanentErr("", "", `load the module on the target, or set on_unsupported = "drop" to copy the data without module values (counted)`,
			fmt.Errorf("source key %q (db %d) is a value of module type %s, which the target cannot hold (it has no modules loaded)", router.Clip(rec.Key), rec.DB, rec.ModuleName()))
	}
	db := a.mapDB(rec.DB)
	if a.sweep != nil {
		a.sweep.add(db, rec.Key)
	}
	a.keys.Add(1)
	if a.useRestore && rec.RestorePayloadLen(version) <= a.maxBulk {
		err := a.out.AddRestore(ctx, db, rec.Key, func(dst []byte) ([]byte, error) {
			return appendRestore(dst, rec, version)
		})
		if err != nil {
			return err
		}
		return a.out.EndUnit(ctx, a.snapshotPos())
	}
	// Each rewritten command is its own unit: a big key spans batches, and
	// fenced batches are applied exactly once, so the key is rebuilt
	// exactly even across a dropped connection.
	if a.noFieldTTL && !a.dropFieldTTL && rdb.HasFieldTTLs(rec.Type) {
		return fieldTTLError(rec)
	}
	opt := a.rewrite
	err := rdb.Rewrite(rec, opt, func(args [][]byte) error {
		if a.noFieldTTL && eq(args[0], "HPEXPIREAT") {
			a.fieldTTLs.Add(1) // on_unsupported = drop
			return nil
		}
		if err := a.addArgs(ctx, db, args); err != nil {
			return err
		}
		return a.out.EndUnit(ctx, a.snapshotPos())
	})
	if err != nil {
		return fmt.Errorf("db %d key %q: %w", rec.DB, router.Clip(rec.Key), err)
	}
	return nil
}

var (
	bRestore = []byte("RESTORE")
	bReplace = []byte("REPLACE")
	bAbsTTL  = []byte("ABSTTL")
	bIdle    = []byte("IDLETIME")
	bFreq    = []byte("FREQ")
)

// appendRestore encodes RESTORE key ttl payload REPLACE ABSTTL [IDLETIME s |
// FREQ f], writing the payload straight from the record.
func appendRestore(dst []byte, rec *rdb.Record, version int) ([]byte, error) {
	n := 6
	if rec.Idle >= 0 || rec.Freq >= 0 {
		n += 2
	}
	dst = resp.AppendArrayHeader(dst, n)
	dst = resp.AppendBulk(dst, bRestore)
	dst = resp.AppendBulk(dst, rec.Key)
	dst = resp.AppendBulkInt(dst, rec.ExpireMs)
	dst = resp.AppendBulkHeader(dst, rec.RestorePayloadLen(version))
	w := writer.Append{B: dst}
	if err := rec.WriteRestorePayload(&w, version); err != nil {
		return nil, err
	}
	dst = append(w.B, '\r', '\n')
	dst = resp.AppendBulk(dst, bReplace)
	dst = resp.AppendBulk(dst, bAbsTTL)
	if rec.Idle >= 0 {
		dst = resp.AppendBulk(dst, bIdle)
		dst = resp.AppendBulkInt(dst, rec.Idle)
	} else if rec.Freq >= 0 {
		dst = resp.AppendBulk(dst, bFreq)
		dst = resp.AppendBulkInt(dst, int64(rec.Freq))
	}
	return dst, nil
}

// addArgs parses and sends a command ferry made itself (a rewritten
// snapshot key, a function library).
func (a *applier) addArgs(ctx context.Context, db int, args [][]byte) error {
	c, _ := a.table.Parse(args)
	return a.out.Add(ctx, db, &c)
}

// command applies one command of the replication stream; end is the offset
// of its last byte. The command is parsed here, once.
func (a *applier) command(ctx context.Context, args [][]byte, end int64) error {
	prev := a.offset
	a.offset = end
	a.cur, _ = a.table.Parse(args)
	c := &a.cur
	switch c.Name {
	case "PING":
	case "REPLCONF":
		if len(args) > 1 && eq(args[1], "GETACK") && a.ackNow != nil {
			a.ackNow()
		}
	case "SELECT":
		if c.Err() != nil {
			return fmt.Errorf("stream at offset %d: malformed SELECT", end)
		}
		db, err := strconv.Atoi(string(args[1]))
		if err != nil {
			return fmt.Errorf("stream at offset %d: malformed SELECT %q", end, args[1])
		}
		a.db = db
	case "MULTI":
		a.inTx = true
		if !a.fenced {
			// Fenced batches are transactions already; unfenced ones keep
			// the source's atomicity with their own MULTI/EXEC.
			return a.out.Add(ctx, -1, c)
		}
		return nil
	case "EXEC":
		a.inTx = false
		if !a.fenced {
			if err := a.out.Add(ctx, -1, c); err != nil {
				return err
			}
		}
	default:
		if err := a.data(ctx, c, prev, end); err != nil {
			return err
		}
	}
	if a.inTx {
		return nil
	}
	pos := a.livePos()
	err := a.out.EndUnit(ctx, pos)
	a.endRouting(pos.Seq)
	if err != nil {
		return err
	}
	if a.flushReq.Load() && a.flushReq.Swap(false) { // a load first: a swap is a locked instruction
		return a.flush(ctx)
	}
	return nil
}

// data applies a stream command that is not the applier's own (SELECT,
// MULTI...): through the move registry, the filter, and the sink.
func (a *applier) data(ctx context.Context, c *router.Command, prev, end int64) error {
	if !c.Has(router.PubSub) {
		a.dataEndAt = end
	}
	recorded := false
	if a.moves.foreignMove(a.stream, c) {
		return fault.PermanentErr("", "", "when the source's resharding is over, run all N processes again: shards whose assignment changed are copied anew (full resync, swept)",
			fmt.Errorf("stream at offset %d: key %q: %w", end, router.Clip(c.Args[1]), ErrCrossProcessMove))
	}
	orig := c
	if from := a.moves.restoreFrom(a.stream, c); from >= 0 && !a.inTx {
		// The key moves here from stream from: what that stream already
		// routed for the slot must be applied first. Flush first: two
		// streams waiting for each other must not also hold back what the
		// other waits for. The move is recorded before the wait, so that
		// from's later commands on the key are dropped, and the wait covers
		// the unit from may be routing right now.
		if err := a.flush(ctx); err != nil {
			return err
		}
		a.moves.restored(a.stream, c.Args[1], a.recv)
		recorded = true
		if err := a.moves.settle(ctx, from); err != nil {
			return err
		}
		if err := a.waitApplied(ctx, from, a.moves.routed(from, c.Args[1])); err != nil {
			return err
		}
	}
	if a.moves != nil {
		if !a.routing {
			a.moves.enter(a.stream)
			a.routing = true
		}
		if slot, err := c.Slot(); err == nil && slot >= 0 {
			a.unitSlots = append(a.unitSlots, slot)
		}
	}
	if recorded {
		c = restoreReplace(c)
	} else {
		c = a.moves.filterMoved(a.stream, c, a.recv)
	}
	if c == nil {
		a.filtered.Add(1) // history of a key that moved to another shard
		return nil
	}
	out, d, why := a.filter.RewriteCommand(a.db, c)
	if d == filter.Refuse {
		why = "filter: " + why
	}
	if d == filter.Apply && !a.known.Knows(out) && a.dropFieldTTL {
		switch {
		case fieldTTLOnly(out):
			// on_unsupported = drop: the hash stays, without the field's TTL.
			a.fieldTTLs.Add(1)
			return nil
		case a.noFunctions && strings.HasPrefix(out.Name, "FUNCTION"):
			a.functions.Add(1)
			return nil
		}
	}
	if d == filter.Apply && !a.known.Knows(out) {
		name := out.Display()
		d, why = filter.Refuse, fmt.Sprintf("the target does not know %s, which the source ran: upgrade the target or load the module that has it, "+
			"or ignore it with block_commands = [%q]", name, strings.ToLower(strings.ReplaceAll(name, " ", "|")))
	}
	switch d {
	case filter.Drop:
		a.filtered.Add(1)
	case filter.Refuse:
		if !a.skipErr {
			return fmt.Errorf("stream at offset %d: %s", end, why)
		}
		if n := a.skipped.Add(1); n <= 10 || n%1000 == 0 {
			a.log.Warn().Str("reason", why).Int64("skipped_total", n).Msg("command refused; skipped (on_error = skip)")
		}
	default:
		for i := range out.Keys {
			if target.OwnKey(a.jobName, out.Key(i)) {
				return target.OwnKeyError(a.jobName, a.db, out.Key(i))
			}
		}
		a.commands.Add(1)
		if done, err := a.rewriteRestore(ctx, out.Args, prev); done || err != nil {
			return err
		}
		if a.raw != nil && out == orig && (len(a.dbMap) == 0 || len(out.DBArgs()) == 0) {
			// Nothing rewrote the command: its source encoding goes as it is.
			return a.out.AddRaw(ctx, a.dbOf(out), out, a.raw)
		}
		a.mapArgs(out)
		if err := a.out.Add(ctx, a.dbOf(out), out); err != nil {
			return err
		}
	}
	return nil
}

// fieldTTLOnly: a command that only sets or clears per-field hash TTLs
// (Redis 7.4+), which on_unsupported = drop may leave out without losing a
// value.
func fieldTTLOnly(c *router.Command) bool {
	switch c.Name {
	case "HEXPIRE", "HPEXPIRE", "HEXPIREAT", "HPEXPIREAT", "HPERSIST":
		return true
	}
	return false
}

// endRouting ends the unit being routed: its slots' last unit is seq.
func (a *applier) endRouting(seq uint64) {
	if !a.routing {
		return
	}
	for _, slot := range a.unitSlots {
		a.moves.note(a.stream, slot, seq)
	}
	a.unitSlots = a.unitSlots[:0]
	a.moves.exit(a.stream)
	a.routing = false
}

// dbOf is the target db a command runs in; -1 for commands that do not
// depend on the selected db (router.AnyDB).
func (a *applier) dbOf(c *router.Command) int {
	if c.Has(router.AnyDB) {
		return -1
	}
	return a.mapDB(a.db)
}

// mapArgs rewrites, in place, the db numbers inside commands that name a db
// (MOVE, COPY … DB n, SWAPDB: router.Command.DBArgs) when db_map is set.
func (a *applier) mapArgs(c *router.Command) {
	if len(a.dbMap) == 0 {
		return
	}
	for _, i := range c.DBArgs() {
		if db, err := strconv.Atoi(string(c.Args[i])); err == nil {
			c.Args[i] = strconv.AppendInt(nil, int64(a.mapDB(db)), 10)
		}
	}
}

func eq(b []byte, s string) bool { return len(b) == len(s) && bytes.EqualFold(b, []byte(s)) }

// keySet remembers the keys of one snapshot (as 64-bit hashes: 8 bytes a key)
// so that a sweep can delete the target's keys the snapshot no longer has. A
// hash collision can only keep a stale key, never delete a live one.
type keySet struct {
	seed   maphash.Seed
	hashes []uint64
	sorted bool
}

func newKeySet() *keySet { return &keySet{seed: maphash.MakeSeed()} }

func (s *keySet) sum(db int, key []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var d [8]byte
	for i := range d {
		d[i] = byte(uint64(db) >> (8 * i))
	}
	h.Write(d[:])
	h.Write(key)
	return h.Sum64()
}

func (s *keySet) add(db int, key []byte) {
	s.hashes = append(s.hashes, s.sum(db, key))
	s.sorted = false
}

func (s *keySet) has(db int, key []byte) bool {
	if !s.sorted {
		slices.Sort(s.hashes)
		s.sorted = true
	}
	_, found := slices.BinarySearch(s.hashes, s.sum(db, key))
	return found
}
