// Package apply turns what a source shard sends — snapshot records and
// replication stream commands — into the commands that bring the target to
// the same state: db_map, filters, the target's capabilities (RESTORE or
// rewrite, field TTLs, functions, modules), ferry's own keys, and on a
// cluster source the ordering of keys that move between shards (Moves).
// Each command is parsed once, here; what comes out goes to a Sink, cut
// into units that end at a source command or transaction boundary.
//
// An Applier belongs to the goroutine that consumes its stream: every
// method but WaitFlushed, DataEnd and the Counts is called from there.
package apply

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
	"github.com/ferry-dev/ferry/internal/notify"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/writer"
)

// Sink receives the Applier's commands and cuts them into batches for the
// target's writers (target.Sink).
type Sink interface {
	Add(ctx context.Context, db int, c *router.Command) error
	AddRaw(ctx context.Context, db int, c *router.Command, raw []byte) error
	AddRestore(ctx context.Context, db int, key []byte, encode func(dst []byte) ([]byte, error)) error
	AddRestoreSpliced(ctx context.Context, db int, key []byte, sp writer.Spliced) error
	EndUnit(ctx context.Context, pos writer.Position) error
	DropUnit()
	Flush(ctx context.Context) error
}

// Config is what an Applier needs of the job and of the target.
type Config struct {
	Stream int // the source shard applied
	Log    zerolog.Logger
	// Job names ferry's own keys on the target: a source key of such a
	// name is refused.
	Job    string
	DBMap  map[int]int
	Filter *filter.Filter // nil: copy everything
	Moves  *Moves         // cluster source: slot migrations between streams (nil: none)
	// Table parses the commands; Known are the target's commands (nil:
	// not known, every command is sent).
	Table *router.Table
	Known *router.Known
	// WaitApplied waits until stream's units up to seq are applied on the
	// target (see Moves).
	WaitApplied func(ctx context.Context, stream int, seq uint64) error
	// Seq numbers units across the whole job (all source shards), above
	// every marker found on the target at start.
	Seq     *atomic.Uint64
	Restore conf.Restore
	Fenced  bool
	// Fold lets the sink send a run of router.Fold commands on one key, or
	// of router.FoldKeys commands on any keys, as one command (conf's fold).
	Fold bool
	// SkipRefused: on_error = skip, a command refused by the filter or
	// unknown to the target is skipped and counted (else it stops the job).
	SkipRefused bool
	// TargetRDB is the target's RDB version (0: unknown), MaxBulk its
	// proto-max-bulk-len.
	TargetRDB int
	MaxBulk   int64
	// NoFieldTTL: the target cannot hold per-field hash TTLs (it does not
	// know HPEXPIREAT); NoFunctions: it has no functions (no FUNCTION:
	// Redis < 7.0); NoModules: it has no modules loaded. Drop:
	// on_unsupported = drop, for all three (else they are refused).
	NoFieldTTL, NoFunctions, NoModules, Drop bool
}

// Counts are what an Applier applied, read by status from any goroutine.
type Counts struct {
	Keys, Expired, Commands, Skipped, Filtered atomic.Int64
	Empty                                      atomic.Int64 // empty collections skipped
	FieldTTLs                                  atomic.Int64 // hash field TTLs dropped (on_unsupported = drop)
	Functions                                  atomic.Int64 // function libraries dropped (on_unsupported = drop)
	Modules                                    atomic.Int64 // module values dropped (on_unsupported = drop)
}

// Applier turns snapshot records and stream commands into target commands.
type Applier struct {
	Counts

	stream int
	out    Sink
	log    zerolog.Logger

	dbMap  map[int]int
	filter *filter.Filter
	moves  *Moves

	table *router.Table
	known *router.Known
	// cur is the stream command at hand, parsed once: the filter, the move
	// registry and the sink all read it (none keeps it past its call).
	cur router.Command

	waitApplied func(ctx context.Context, stream int, seq uint64) error
	// lastSeq is the number of the last unit this Applier ended; flushed is
	// how far its batches are submitted; flushReq asks it to submit all it
	// holds at its next unit boundary (another stream waits for it).
	lastSeq   uint64
	flushed   atomic.Uint64
	flushReq  atomic.Bool
	flushNote notify.Notifier // flushed moved
	jobName   string
	restore   conf.Restore
	fenced    bool
	fold      bool
	skipErr   bool
	tgtRDB    int
	maxBulk   int64
	rewrite   rdb.RewriteOptions
	ackNow    func()
	snapshot  bool // applying a snapshot now
	seq       *atomic.Uint64
	// resumed: the stream continues a position recorded on the target
	// (after a restart); false again after any full resync. replIDs are the
	// replication histories of the source node it reads.
	resumed bool
	replIDs [2]string

	// snapshot state
	srcRDB     int
	useRestore bool
	num        [20]byte // an integer string's digits (plainString)
	sweep      *KeySet  // keys of this snapshot, when a sweep must follow

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
	// consumer (PublishDataEnd) for a rewind; dataEndAt is the consumer's
	// own, up to date.
	dataEnd   atomic.Int64
	dataEndAt int64

	noFieldTTL, noFunctions, noModules, dropUnsupported bool
	warnedModuleAux                                     bool
}

// New returns the Applier of cfg.Stream; it needs a sink (SetSink) before
// it applies anything.
func New(cfg Config) *Applier {
	return &Applier{
		stream: cfg.Stream, log: cfg.Log, jobName: cfg.Job,
		dbMap: cfg.DBMap, filter: cfg.Filter, moves: cfg.Moves,
		table: cfg.Table, known: cfg.Known, waitApplied: cfg.WaitApplied, seq: cfg.Seq,
		restore: cfg.Restore, fenced: cfg.Fenced, fold: cfg.Fold, skipErr: cfg.SkipRefused, tgtRDB: cfg.TargetRDB, maxBulk: cfg.MaxBulk,
		noFieldTTL: cfg.NoFieldTTL, noFunctions: cfg.NoFunctions, noModules: cfg.NoModules, dropUnsupported: cfg.Drop,
	}
}

// SetSink sets where the commands go (the sink reads the Applier as its
// target.Feed, so it is made after it).
func (a *Applier) SetSink(out Sink) { a.out = out }

// Sink is where the commands go.
func (a *Applier) Sink() Sink { return a.out }

// SetAckNow sets what a REPLCONF GETACK in the stream calls: the reader's
// immediate acknowledgement.
func (a *Applier) SetAckNow(f func()) { a.ackNow = f }

// Log is the Applier's logger (named for its stream).
func (a *Applier) Log() *zerolog.Logger { return &a.log }

// SetHistory sets the replication histories of the source node the stream
// reads (its replication id and the one it inherited).
func (a *Applier) SetHistory(ids [2]string) { a.replIDs = ids }

// Resume continues the stream at pos, recorded on the target: units the
// target's markers hold are skipped until the next full resync.
func (a *Applier) Resume(pos writer.Position) {
	a.replid, a.offset, a.db = pos.ReplID, pos.Offset, pos.DB
	a.dataEndAt = pos.Offset
	a.dataEnd.Store(pos.Offset)
	a.resumed = true
}

// SetReplID continues the stream under a new replication id (the source
// node changed its history at a partial resync or a failover).
func (a *Applier) SetReplID(id string) { a.replid = id }

// SetDB sets the db the stream has selected.
func (a *Applier) SetDB(db int) { a.db = db }

// Moves is the registry of keys moving between the source's shards (nil:
// a source that is one shard).
func (a *Applier) Moves() *Moves { return a.moves }

// InTx says whether the stream is inside a MULTI.
func (a *Applier) InTx() bool { return a.inTx }

// DropTx discards the unfinished unit, a transaction included.
func (a *Applier) DropTx() {
	a.out.DropUnit()
	a.inTx = false
}

// PublishDataEnd makes the end of the last data command visible to
// DataEnd (the consumer calls it at its own pace: an atomic store per
// command is a measurable share of the apply path).
func (a *Applier) PublishDataEnd() { a.dataEnd.Store(a.dataEndAt) }

// DataEnd is the published end offset of the last stream command that
// changed data.
func (a *Applier) DataEnd() int64 { return a.dataEnd.Load() }

// SnapshotKeys are the keys of the snapshot applied last, when a sweep
// must follow it (nil: none).
func (a *Applier) SnapshotKeys() *KeySet { return a.sweep }

// mapDB applies db_map; a source db not in a non-empty map keeps its number.
func (a *Applier) mapDB(db int) int {
	if t, ok := a.dbMap[db]; ok {
		return t
	}
	return db
}

// The Applier is the target.Feed of its sink: what the sink reads of the
// command at hand.

func (a *Applier) Stream() int        { return a.stream }
func (a *Applier) Offset() int64      { return a.offset }
func (a *Applier) Resumed() bool      { return a.resumed }
func (a *Applier) ReplIDs() [2]string { return a.replIDs }

// BeginSnapshot prepares for a new snapshot at (replid, offset).
func (a *Applier) BeginSnapshot(replid string, offset int64, sweep bool) {
	a.snapshot = true
	a.resumed = false
	a.dataEndAt = offset
	a.dataEnd.Store(offset)
	a.replid, a.offset, a.db, a.inTx = replid, offset, 0, false
	a.unitSlots = a.unitSlots[:0] // the unfinished unit is dropped: nothing of it to note
	a.endRouting(0)
	a.srcRDB = 0
	a.sweep = nil
	if sweep {
		a.sweep = newKeySet()
	}
}

// GoLive ends the snapshot: the stream's position turns live. The caller
// has flushed it, waited for the target to acknowledge it, and swept what
// it does not hold.
func (a *Applier) GoLive(ctx context.Context) error {
	a.sweep = nil
	a.snapshot = false
	if err := a.out.EndUnit(ctx, a.livePos()); err != nil {
		return err
	}
	return a.out.Flush(ctx)
}

// WaitFlushed waits until the Applier has submitted its units up to seq,
// asking it to submit what it holds at its next unit boundary. Any
// goroutine may call it.
func (a *Applier) WaitFlushed(ctx context.Context, seq uint64) error {
	for {
		flushed := a.flushNote.Wait()
		if a.flushed.Load() >= seq {
			return nil
		}
		a.flushReq.Store(true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-flushed:
		}
	}
}

func (a *Applier) snapshotPos() writer.Position {
	a.lastSeq = a.seq.Add(1)
	return writer.Position{Seq: a.lastSeq, State: writer.StateSnapshot, ReplID: a.replid, Offset: a.offset}
}

func (a *Applier) livePos() writer.Position {
	a.lastSeq = a.seq.Add(1)
	return writer.Position{Seq: a.lastSeq, State: writer.StateLive, ReplID: a.replid, Offset: a.offset, DB: a.db}
}

// Flush submits everything the Applier holds, at a unit boundary.
func (a *Applier) Flush(ctx context.Context) error {
	if err := a.out.Flush(ctx); err != nil {
		return err
	}
	a.flushed.Store(a.lastSeq)
	a.flushNote.Notify()
	return nil
}

// fieldTTLError refuses a hash with per-field TTLs for a target that cannot
// hold them: before its first command, so the target never holds the hash
// without them unless the user asked for that.
func fieldTTLError(rec *rdb.Record) error {
	return fault.PermanentErr("", "", `migrate into Redis 7.4+ (or Valkey 9+), or set on_unsupported = "drop" to copy the hashes without their field TTLs (counted)`,
		fmt.Errorf("source hash %q (db %d) has per-field TTLs, which the target cannot hold (it does not know HPEXPIREAT)", router.Clip(rec.Key), rec.DB))
}

// Record applies one snapshot record.
func (a *Applier) Record(ctx context.Context, rec *rdb.Record, version int) error {
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
			a.Filtered.Add(1)
			return nil
		}
		return a.key(ctx, rec, version)
	case rdb.KindFunction:
		if !a.filter.Functions() {
			return nil
		}
		if a.noFunctions {
			if a.dropUnsupported {
				a.Functions.Add(1)
				return nil
			}
			return fault.PermanentErr("", "", `migrate into Redis 7.0+, or set on_unsupported = "drop" to copy the data without the function libraries (counted)`,
				errors.New("the source has function libraries, which the target cannot hold (it does not know FUNCTION)"))
		}
		if err := a.addArgs(ctx, -1, [][]byte{[]byte("FUNCTION"), []byte("LOAD"), []byte("REPLACE"), rec.Code}); err != nil {
			return err
		}
		return a.out.EndUnit(ctx, a.snapshotPos())
	case rdb.KindAux:
		// A key the stream after the snapshot writes (see rdb.AuxKeep):
		// the sweep keeps it, nothing else is done or counted.
		if key, ok := rec.Keep(); ok && a.sweep != nil {
			a.sweep.add(a.mapDB(rec.DB), key)
		}
	case rdb.KindModuleAux:
		if !a.warnedModuleAux {
			a.warnedModuleAux = true
			a.log.Warn().Msg("the snapshot holds module auxiliary data; ferry cannot transfer it (module values themselves are restored)")
		}
	}
	return nil
}

func (a *Applier) key(ctx context.Context, rec *rdb.Record, version int) error {
	if rec.Empty() {
		// Redis skips these when it loads an RDB, and refuses their RESTORE.
		if n := a.Empty.Add(1); n <= 10 {
			a.log.Warn().Int("db", rec.DB).Str("key", router.Clip(rec.Key)).Msg("skipping an empty collection, as Redis does when it loads an RDB")
		}
		return nil
	}
	if rec.ExpireMs > 0 && rec.ExpireMs <= time.Now().UnixMilli() {
		a.Expired.Add(1)
		return nil
	}
	if writer.OwnKey(a.jobName, rec.Key) {
		return writer.OwnKeyError(a.jobName, rec.DB, rec.Key)
	}
	if a.noModules && IsModule(rec.Type) {
		if a.dropUnsupported {
			a.Modules.Add(1)
			return nil
		}
		return fault.PermanentErr("", "", `load the module on the target, or set on_unsupported = "drop" to copy the data without module values (counted)`,
			fmt.Errorf("source key %q (db %d) is a value of module type %s, which the target cannot hold (it has no modules loaded)", router.Clip(rec.Key), rec.DB, rec.ModuleName()))
	}
	db := a.mapDB(rec.DB)
	if a.sweep != nil {
		a.sweep.add(db, rec.Key)
	}
	a.Keys.Add(1)
	if a.useRestore && rec.RestorePayloadLen(version) <= a.maxBulk {
		if err := a.addWhole(ctx, db, rec, version); err != nil {
			return err
		}
		return a.endSnapshotUnit(ctx)
	}
	// Each rewritten command is its own unit: a big key spans batches, and
	// fenced batches are applied exactly once, so the key is rebuilt
	// exactly even across a dropped connection.
	if a.noFieldTTL && !a.dropUnsupported && rdb.HasFieldTTLs(rec.Type) {
		return fieldTTLError(rec)
	}
	opt := a.rewrite
	err := rdb.Rewrite(rec, opt, func(args [][]byte) error {
		if a.noFieldTTL && eq(args[0], "HPEXPIREAT") {
			a.FieldTTLs.Add(1) // on_unsupported = drop
			return nil
		}
		if err := a.addArgs(ctx, db, args); err != nil {
			return err
		}
		return a.endSnapshotUnit(ctx)
	})
	if err != nil {
		return fmt.Errorf("db %d key %q: %w", rec.DB, router.Clip(rec.Key), err)
	}
	return nil
}

// addWhole adds the one command that writes rec's whole value: a SET of a
// plain string, a RESTORE sent from the chunks of a big value, or a RESTORE
// encoded into the batch.
func (a *Applier) addWhole(ctx context.Context, db int, rec *rdb.Record, version int) error {
	if v, ok := a.plainString(rec); ok {
		return a.out.AddRestore(ctx, db, rec.Key, func(dst []byte) ([]byte, error) { return appendSet(dst, rec.Key, v, rec.ExpireMs), nil })
	}
	sp, ok, err := splicedRestore(rec, version)
	if err != nil {
		return err
	}
	if ok {
		return a.out.AddRestoreSpliced(ctx, db, rec.Key, sp)
	}
	return a.out.AddRestore(ctx, db, rec.Key, func(dst []byte) ([]byte, error) { return appendRestore(dst, rec, version) })
}

// endSnapshotUnit ends a unit of the snapshot, and submits what is batched
// when WaitFlushed asks for it: the consumer does not flush a snapshot when
// it catches up with the source (see job's stream.idle).
func (a *Applier) endSnapshotUnit(ctx context.Context) error {
	if err := a.out.EndUnit(ctx, a.snapshotPos()); err != nil {
		return err
	}
	return a.flushIfAsked(ctx)
}

// flushIfAsked submits what is batched when WaitFlushed asked for it, at a
// unit boundary.
func (a *Applier) flushIfAsked(ctx context.Context) error {
	if a.flushReq.Load() && a.flushReq.Swap(false) { // a load first: a swap is a locked instruction
		return a.Flush(ctx)
	}
	return nil
}

// plainString returns the value of a string key that a SET carries as well
// as a RESTORE: its bytes as they are or an integer, with no LRU idle time or
// LFU count to keep, and a TTL only where the target has SET's PXAT (Redis
// 6.2; 7.0 is the first with RDB version 10). The target has no payload to
// checksum and copy out again, ferry no payload checksum to compute: on the
// server alone a SET of a 1.5 KB string cost a sixth less CPU than its
// RESTORE, in a full sync of the bench's data set 2 % of the target's CPU.
// restore = "always" keeps RESTORE.
func (a *Applier) plainString(rec *rdb.Record) ([]byte, bool) {
	if a.restore == conf.RestoreAlways || rec.Type != rdb.TypeString || rec.Idle >= 0 || rec.Freq >= 0 ||
		(rec.ExpireMs > 0 && a.tgtRDB < 10) {
		return nil, false
	}
	return rec.PlainString(a.num[:0])
}

// appendSet encodes SET key v [PXAT expireMs].
func appendSet(dst, key, v []byte, expireMs int64) []byte {
	n := 3
	if expireMs > 0 {
		n = 5
	}
	dst = slices.Grow(dst, len(key)+len(v)+64)
	dst = resp.AppendArrayHeader(dst, n)
	dst = resp.AppendBulk(dst, bSet)
	dst = resp.AppendBulk(dst, key)
	dst = resp.AppendBulk(dst, v)
	if expireMs > 0 {
		dst = resp.AppendBulk(dst, bPXAT)
		dst = resp.AppendBulkInt(dst, expireMs)
	}
	return dst
}

var (
	bSet     = []byte("SET")
	bPXAT    = []byte("PXAT")
	bRestore = []byte("RESTORE")
	bReplace = []byte("REPLACE")
	bAbsTTL  = []byte("ABSTTL")
	bIdle    = []byte("IDLETIME")
	bFreq    = []byte("FREQ")
)

// appendRestore encodes RESTORE key ttl payload REPLACE ABSTTL [IDLETIME s |
// FREQ f], writing the payload straight from the record.
func appendRestore(dst []byte, rec *rdb.Record, version int) ([]byte, error) {
	plen := rec.RestorePayloadLen(version)
	// The whole command's size is known: one allocation at most, where
	// appending let the batch's buffer double (and copy) along a big value.
	dst = slices.Grow(dst, int(plen)+len(rec.Key)+128)
	dst = appendRestoreHead(dst, rec, plen)
	dst, err := rec.AppendRestorePayload(dst, version)
	if err != nil {
		return nil, err
	}
	return appendRestoreTail(dst, rec), nil
}

// splicedRestore is the RESTORE of a value held in chunks (rdb's
// TakeRestorePayload) as a writer.Spliced, which sends the chunks from
// where they lie; ok is false for any other value.
func splicedRestore(rec *rdb.Record, version int) (sp writer.Spliced, ok bool, err error) {
	plen := rec.RestorePayloadLen(version)
	body, release, err := rec.TakeRestorePayload(version)
	if err != nil || body == nil {
		return writer.Spliced{}, false, err
	}
	return writer.Spliced{Head: appendRestoreHead(nil, rec, plen), Tail: appendRestoreTail(nil, rec), Body: body, Release: release}, true, nil
}

// appendRestoreHead encodes a RESTORE's words up to its payload's bulk
// header (plen bytes).
func appendRestoreHead(dst []byte, rec *rdb.Record, plen int64) []byte {
	n := 6
	if rec.Idle >= 0 || rec.Freq >= 0 {
		n += 2
	}
	dst = resp.AppendArrayHeader(dst, n)
	dst = resp.AppendBulk(dst, bRestore)
	dst = resp.AppendBulk(dst, rec.Key)
	dst = resp.AppendBulkInt(dst, rec.ExpireMs)
	return resp.AppendBulkHeader(dst, plen)
}

// appendRestoreTail encodes what follows a RESTORE's payload.
func appendRestoreTail(dst []byte, rec *rdb.Record) []byte {
	dst = append(dst, '\r', '\n')
	dst = resp.AppendBulk(dst, bReplace)
	dst = resp.AppendBulk(dst, bAbsTTL)
	if rec.Idle >= 0 {
		dst = resp.AppendBulk(dst, bIdle)
		dst = resp.AppendBulkInt(dst, rec.Idle)
	} else if rec.Freq >= 0 {
		dst = resp.AppendBulk(dst, bFreq)
		dst = resp.AppendBulkInt(dst, int64(rec.Freq))
	}
	return dst
}

// addArgs parses and sends a command ferry made itself (a rewritten
// snapshot key, a function library).
func (a *Applier) addArgs(ctx context.Context, db int, args [][]byte) error {
	c, _ := a.table.Parse(args)
	a.noFold(&c)
	return a.out.Add(ctx, db, &c)
}

// noFold clears c's router.Fold and FoldKeys when fold is off: the sink
// then sends c as it is, never joined to the command before it.
func (a *Applier) noFold(c *router.Command) {
	if !a.fold {
		c.Flags &^= router.Fold | router.FoldKeys
	}
}

// Command applies one command of the replication stream: args, raw its
// encoding by the source exactly as resp.AppendCommand encodes args (nil:
// not known), end the offset of its last byte, recv when ferry received it.
// The command is parsed here, once.
func (a *Applier) Command(ctx context.Context, args [][]byte, raw []byte, end int64, recv time.Time) error {
	a.raw, a.recv = raw, recv
	err := a.command(ctx, args, end)
	a.raw = nil
	return err
}

func (a *Applier) command(ctx context.Context, args [][]byte, end int64) error {
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
	return a.flushIfAsked(ctx)
}

// data applies a stream command that is not the Applier's own (SELECT,
// MULTI...): through the move registry, the filter, and the sink.
func (a *Applier) data(ctx context.Context, c *router.Command, prev, end int64) error {
	if !c.Has(router.PubSub) {
		a.dataEndAt = end
	}
	recorded, stale := false, false
	if a.moves.foreignMove(a.stream, c) {
		return fault.PermanentErr("", "", "when the source's resharding is over, run all N processes again: shards whose assignment changed are copied anew (full resync, swept)",
			fmt.Errorf("stream at offset %d: key %q: %w", end, router.Clip(c.Args[1]), ErrCrossProcessMove))
	}
	orig := c
	if a.moves != nil && isRestore(c) && len(c.Args) > 1 && !a.inTx {
		// The key may move here from another stream: what the others
		// already routed for the slot must be applied first. The move is
		// recorded before the wait, so that their later commands on the key
		// are dropped, and the wait covers the unit each may be routing
		// right now. Flush before waiting: two streams waiting for each
		// other must not also hold back what the other waits for.
		//
		// Every other stream, not only the one the slot was last seen on:
		// when the key moved twice (A to B to C) and B lags, ferry sees C's
		// RESTORE before B's and cannot tell where the key comes from.
		if stale = !a.moves.restored(a.stream, c.Args[1], a.recv); !stale {
			flushed := false
			for from := range a.moves.streams() {
				if from == a.stream {
					continue
				}
				if err := a.moves.settle(ctx, from); err != nil {
					return err
				}
				seq := a.moves.routed(from, c.Args[1])
				if seq == 0 {
					continue // nothing of the slot from there
				}
				if !flushed {
					if err := a.Flush(ctx); err != nil {
						return err
					}
					flushed = true
				}
				if err := a.waitApplied(ctx, from, seq); err != nil {
					return err
				}
			}
		}
		recorded = true
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
	if recorded && !stale && !a.moves.holds(a.stream, c.Args[1], a.recv) {
		// The key moved on while this stream waited (another stream's
		// RESTORE, received later, was recorded meanwhile): this one is
		// history now. Checked after entering the unit: a RESTORE recorded
		// after the check waits for this unit (settle).
		stale = true
	}
	switch {
	case stale:
		c = nil // history: the key moved on since (see Moves)
	case recorded:
		c = restoreReplace(c)
	default:
		c = a.moves.filterMoved(a.stream, c, a.recv)
	}
	if c == nil {
		a.Filtered.Add(1) // history of a key that moved to another shard
		return nil
	}
	out, d, why := a.filter.RewriteCommand(a.db, c)
	if d == filter.Refuse {
		why = "filter: " + why
	}
	unknown := d == filter.Apply && !a.known.Knows(out)
	if unknown && a.dropUnsupported {
		switch {
		case fieldTTLOnly(out):
			// on_unsupported = drop: the hash stays, without the field's TTL.
			a.FieldTTLs.Add(1)
			return nil
		case a.noFunctions && strings.HasPrefix(out.Name, "FUNCTION"):
			a.Functions.Add(1)
			return nil
		}
	}
	if unknown {
		name := out.Display()
		d, why = filter.Refuse, fmt.Sprintf("the target does not know %s, which the source ran: upgrade the target or load the module that has it, "+
			"or ignore it with block_commands = [%q]", name, strings.ToLower(strings.ReplaceAll(name, " ", "|")))
	}
	switch d {
	case filter.Drop:
		a.Filtered.Add(1)
	case filter.Refuse:
		if !a.skipErr {
			return fmt.Errorf("stream at offset %d: %s", end, why)
		}
		if n := a.Skipped.Add(1); n <= 10 || n%1000 == 0 {
			a.log.Warn().Str("reason", why).Int64("skipped_total", n).Msg("command refused; skipped (on_error = skip)")
		}
	default:
		for i := range out.Keys {
			if writer.OwnKey(a.jobName, out.Key(i)) {
				return writer.OwnKeyError(a.jobName, a.db, out.Key(i))
			}
		}
		a.Commands.Add(1)
		if done, err := a.rewriteRestore(ctx, out.Args, prev); done || err != nil {
			return err
		}
		a.noFold(out)
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
func (a *Applier) endRouting(seq uint64) {
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
func (a *Applier) dbOf(c *router.Command) int {
	if c.Has(router.AnyDB) {
		return -1
	}
	return a.mapDB(a.db)
}

// mapArgs rewrites, in place, the db numbers inside commands that name a db
// (MOVE, COPY … DB n, SWAPDB: router.Command.DBArgs) when db_map is set.
func (a *Applier) mapArgs(c *router.Command) {
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

// KeySet remembers the keys of one snapshot (as 64-bit hashes: 8 bytes a key)
// so that a sweep can delete the target's keys the snapshot no longer has. A
// hash collision can only keep a stale key, never delete a live one.
type KeySet struct {
	seed   maphash.Seed
	hashes []uint64
	sorted bool
}

func newKeySet() *KeySet { return &KeySet{seed: maphash.MakeSeed()} }

func (s *KeySet) sum(db int, key []byte) uint64 {
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

func (s *KeySet) add(db int, key []byte) {
	s.hashes = append(s.hashes, s.sum(db, key))
	s.sorted = false
}

func (s *KeySet) Has(db int, key []byte) bool {
	if !s.sorted {
		slices.Sort(s.hashes)
		s.sorted = true
	}
	_, found := slices.BinarySearch(s.hashes, s.sum(db, key))
	return found
}

// IsModule says whether an RDB type is a module value.
func IsModule(t byte) bool { return t == rdb.TypeModule2 || t == rdb.TypeModulePreGA }
