package reader

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// Big values.
//
// A DUMP makes the source serialize the whole value at once (blocking it
// and holding a second copy of the value meanwhile) and makes ferry hold
// the whole payload. So before a key is DUMPed its size is asked with
// MEMORY USAGE (the default SAMPLES 5: constant time for every type, exact
// for compact encodings and strings, an estimate from a few elements for a
// hashtable, skiplist, quicklist or stream). A key at or above
// ScanConfig.BigValue is not DUMPed: it is read in pieces — HSCAN, SSCAN,
// ZSCAN, LRANGE windows, GETRANGE windows, XRANGE windows plus XINFO GROUPS,
// XINFO CONSUMERS and XPENDING windows for a stream's groups — each piece
// asking for about pieceBytes.
//
// The pieces are written as commands in the command stream, never as an
// RDB object in the snapshot: an RDB object declares its element count up
// front, and a SCAN cursor over a value that changes (or rehashes) during
// the read may return an element twice or miss one that comes and goes, so
// an exact count would need the whole value in memory to dedupe. Commands
// need no count and are idempotent where SCAN repeats itself (HSET, SADD,
// ZADD of a member already there). The key is written as DEL key, then
// batches of HSET (each followed by HPEXPIREAT for its fields that have a
// TTL, Redis 7.4+) / SADD / ZADD / RPUSH / SET + APPEND / XADD (then XSETID,
// XGROUP CREATE, XGROUP CREATECONSUMER, XCLAIM … FORCE JUSTID), then
// PEXPIREAT when it has a TTL: the same sequence package rdb rewrites a
// snapshot value into. The DEL and the first batch are one MULTI/EXEC, so
// the target's old value is replaced by the first piece at once: a reader
// of the target never finds the key missing (it may find it partly
// written). Memory stays bounded by one piece and the chunk of commands
// built from it.
//
// A pass finishes its snapshot without its big keys, then reads them into
// the command stream that follows the snapshot (before the pass counts as
// done, so a barrier covers them). The snapshot names them (an AUX field
// rdb.AuxKeep each, after its keys): the sweep that follows a snapshot
// after a restart deletes what the snapshot does not hold, and must keep
// the big keys the target holds until the stream rewrites them. In the
// live phase, a changed key that is big is read the same way in place of
// its RESTORE.
//
// Correctness is per key, as for the rest of the scan reader: a value read
// in pieces while it changes may come out as a mix of before and after (a
// LRANGE window shifted by an LPUSH, a field deleted after HSCAN returned
// it), but every change publishes a keyspace notification that makes the
// key dirty again, and the read that follows starts after the change: the
// key converges to its final value once the source stops changing it.
//
// The size check costs one MEMORY USAGE per key. It rides in the same
// pipeline as the DUMPs of the previous SCAN batch and the next SCAN, so a
// pass still makes one round trip per batch. A value that grows past the
// threshold between its check and its DUMP (one round trip later) is DUMPed
// whole (bounded by MaxBulk, as before). A source that refuses MEMORY USAGE
// has every value DUMPed whole; one that refuses a piece command (HSCAN…)
// has that value DUMPed whole too, with a warning.

// DefaultBigValue is ScanConfig.BigValue when unset: 8 MiB. A DUMP of that
// much takes the source a few milliseconds, and a RESTORE of it is well
// within any target's proto-max-bulk-len; far below it the extra round
// trips of a piecewise read would cost more than they save.
const DefaultBigValue = 8 << 20

// pieceBytes is about how much one read of a big value asks the source for.
const pieceBytes = 1 << 20

// Element counts of one read (the estimate of a value's element size is
// rough: these keep a read sane whatever it says).
const (
	minPieceElems = 16
	maxPieceElems = 8192
)

var (
	bDEL              = []byte("DEL")
	bMULTI            = []byte("MULTI")
	bEXEC             = []byte("EXEC")
	bPEXPIREAT        = []byte("PEXPIREAT")
	bHPEXPIREAT       = []byte("HPEXPIREAT")
	bHPEXPIRETIME     = []byte("HPEXPIRETIME")
	bFIELDS           = []byte("FIELDS")
	bOne              = []byte("1")
	bSET              = []byte("SET")
	bAPPEND           = []byte("APPEND")
	bHSET             = []byte("HSET")
	bSADD             = []byte("SADD")
	bZADD             = []byte("ZADD")
	bRPUSH            = []byte("RPUSH")
	bXADD             = []byte("XADD")
	bXSETID           = []byte("XSETID")
	bXGROUP           = []byte("XGROUP")
	bXCLAIM           = []byte("XCLAIM")
	bCREATE           = []byte("CREATE")
	bCREATECONSUMER   = []byte("CREATECONSUMER")
	bMAXLEN           = []byte("MAXLEN")
	bZeroArg          = []byte("0")
	bPlaceholderField = []byte("_")
)

// cmdOut batches commands of the stream and writes them out in chunks,
// advancing the stream offset.
type cmdOut struct {
	s   *Scan
	buf []byte
	// tx: a MULTI is open, holding the DEL that starts a big value; it
	// ends (EXEC) after the first command written past txMark (the end of
	// the DEL in buf), so the target never lacks the key, whose old value
	// is replaced by its first piece at once.
	tx     bool
	txMark int
}

func (o *cmdOut) maybeFlush() error {
	if len(o.buf) >= chunk {
		return o.flush()
	}
	return nil
}

func (o *cmdOut) add(args ...[]byte) error {
	o.buf = resp.AppendCommand(o.buf, args...)
	return o.piece()
}

// begin starts a big value: MULTI, DEL key (see tx).
func (o *cmdOut) begin(key []byte) error {
	o.buf = resp.AppendCommand(o.buf, bMULTI)
	o.buf = resp.AppendCommand(o.buf, bDEL, key)
	o.tx, o.txMark = true, len(o.buf)
	return o.maybeFlush()
}

// piece follows commands of a big value: the first ends the MULTI.
func (o *cmdOut) piece() error {
	if o.tx && len(o.buf) > o.txMark {
		o.end()
	}
	return o.maybeFlush()
}

// end ends the MULTI of a big value, if it is still open.
func (o *cmdOut) end() {
	if o.tx {
		o.buf = resp.AppendCommand(o.buf, bEXEC)
		o.tx = false
	}
}

func (o *cmdOut) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	err := o.s.fo.stream(o.buf)
	o.s.offset += int64(len(o.buf))
	o.buf = o.buf[:0]
	o.txMark = 0
	if cap(o.buf) > 4*chunk {
		o.buf = nil // a big piece's command: do not keep its buffer
	}
	return err
}

// roundTrip sends cmds in one pipeline and returns their replies (error
// replies as values).
func roundTrip(c *resp.Conn, cmds ...[][]byte) ([]resp.Value, error) {
	var out []byte
	for _, cmd := range cmds {
		out = resp.AppendCommand(out, cmd...)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	defer c.SetDeadline(time.Time{})
	if _, err := c.W.Write(out); err != nil {
		return nil, err
	}
	if err := c.W.Flush(); err != nil {
		return nil, err
	}
	vs := make([]resp.Value, len(cmds))
	for i := range cmds {
		v, err := c.R.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cmds[i][0], err)
		}
		vs[i] = v
	}
	return vs, nil
}

// errRefused: the source refuses a command a piecewise read needs (ACL,
// renamed) or answers it with an error (a compatible server that lacks it):
// the value is DUMPed whole instead.
var errRefused = errors.New("refused")

// errChanged: the key changed type (or vanished) during the read; the
// notification of that change reads it again.
var errChanged = errors.New("changed during the read")

// valueErr turns an error reply to one of a big read's commands into
// errChanged (WRONGTYPE: the key was replaced) or errRefused.
func (s *Scan) valueErr(cmd []byte, v resp.Value) error {
	msg := string(v.Str)
	if strings.HasPrefix(msg, "WRONGTYPE") {
		return errChanged
	}
	return fmt.Errorf("%s: %s: %w", cmd, clip(msg), errRefused)
}

// bigRead reads one big value in pieces.
type bigRead struct {
	s    *Scan
	c    *resp.Conn
	o    *cmdOut
	key  []byte
	n    int // elements per read
	held int64
}

// readBig writes the key of the selected db, read in pieces, as commands
// to o. A source refusing a piece command makes it DUMP the value instead
// (with a warning, once).
func (s *Scan) readBig(c *resp.Conn, db int, key []byte, o *cmdOut) error {
	addr := s.cfg.Dial.Addr
	vs, err := roundTrip(c, [][]byte{[]byte("TYPE"), key}, [][]byte{[]byte("PTTL"), key}, [][]byte{[]byte("MEMORY"), []byte("USAGE"), key})
	if err != nil {
		return fmt.Errorf("source %s: %w", addr, err)
	}
	now := time.Now().UnixMilli()
	for i, v := range vs {
		if v.IsError() {
			return s.dumpWhole(c, db, key, o, s.valueErr([]byte([]string{"TYPE", "PTTL", "MEMORY"}[i]), v))
		}
	}
	typ := string(vs[0].Str)
	if typ == "none" {
		return o.add(bDEL, key)
	}
	exp := int64(0)
	if vs[1].Int >= 0 {
		exp = now + vs[1].Int
	}
	usage := vs[2].Int
	r := &bigRead{s: s, c: c, o: o, key: key}
	lenCmd := map[string]string{"hash": "HLEN", "set": "SCARD", "zset": "ZCARD", "list": "LLEN", "stream": "XLEN", "string": "STRLEN"}[typ]
	if lenCmd == "" {
		// A module type: only DUMP reads it.
		return s.dumpWhole(c, db, key, o, nil)
	}
	vs, err = roundTrip(c, [][]byte{[]byte(lenCmd), key})
	if err != nil {
		return fmt.Errorf("source %s: %w", addr, err)
	}
	if vs[0].IsError() {
		if err := s.valueErr([]byte(lenCmd), vs[0]); err != errChanged {
			return s.dumpWhole(c, db, key, o, err)
		}
		return nil // replaced since TYPE: its notification reads it again
	}
	elems := max(vs[0].Int, 1)
	r.n = int(min(max(pieceBytes/max(usage/elems, 1), minPieceElems), maxPieceElems))
	if err := o.begin(key); err != nil {
		return err
	}
	defer o.end()
	switch typ {
	case "hash":
		err = r.scan("HSCAN", bHSET, false, !s.noFieldTTL)
	case "set":
		err = r.scan("SSCAN", bSADD, false, false)
	case "zset":
		err = r.scan("ZSCAN", bZADD, true, false)
	case "list":
		err = r.list()
	case "string":
		err = r.str()
	case "stream":
		err = r.stream()
	}
	if errors.Is(err, errRefused) {
		return s.dumpWhole(c, db, key, o, err)
	}
	s.update(func(st *Stats) {
		st.BigValues++
		st.PeakPiece = max(st.PeakPiece, r.held)
	})
	switch {
	case err == errChanged:
		return nil // its notification reads it again
	case err != nil:
		return err
	}
	if exp > 0 {
		return o.add(bPEXPIREAT, key, strconv.AppendInt(nil, exp, 10))
	}
	return nil
}

// dumpWhole writes the key as RESTORE (or DEL), read with one DUMP: for
// values a piecewise read cannot take.
func (s *Scan) dumpWhole(c *resp.Conn, db int, key []byte, o *cmdOut, why error) error {
	if why != nil && !s.noPieces {
		s.noPieces = true
		s.cfg.Log.Warn().Err(why).Msg("the source refuses a command needed to read a big value in pieces (said once): such values are read with one DUMP")
	}
	_, err := s.fetch(c, db, [][]byte{key}, nil, nil, func(key, payload []byte, expireMs int64) error {
		if payload == nil {
			o.buf = appendDelCmd(o.buf, key)
		} else {
			o.buf = appendRestoreCmd(o.buf, key, expireMs, payload)
		}
		return o.maybeFlush()
	}, nil)
	return err
}

// account notes what one piece held: the reply and the commands not yet
// written out.
func (r *bigRead) account(reply int) {
	r.held = max(r.held, int64(reply+len(r.o.buf)))
}

func valueBytes(v resp.Value) int {
	n := len(v.Str)
	for _, e := range v.Elems {
		n += valueBytes(e)
	}
	return n
}

// scan reads a hash, set or zset with its SCAN command into batches of cmd
// (swapping the ZSCAN member/score pairs into ZADD's score member). With
// fieldTTLs (a hash), the per-field expiry times of each batch are asked
// with HPEXPIRETIME in the pipeline of the next SCAN, so that the read
// keeps one round trip per batch.
func (r *bigRead) scan(scanCmd string, cmd []byte, swap, fieldTTLs bool) error {
	cursor := []byte("0")
	count := []byte(strconv.Itoa(r.n))
	var ttlCmd [][]byte // HPEXPIRETIME of the last batch's fields, not sent yet
	for {
		cmds := [][][]byte{{[]byte(scanCmd), r.key, cursor, []byte("COUNT"), count}}
		if ttlCmd != nil {
			cmds = append([][][]byte{ttlCmd}, cmds...)
		}
		vs, err := roundTrip(r.c, cmds...)
		if err != nil {
			return fmt.Errorf("source %s: %w", r.s.cfg.Dial.Addr, err)
		}
		if ttlCmd != nil {
			if err := r.fieldTTLs(ttlCmd, vs[0]); err != nil {
				return err
			}
			ttlCmd, vs = nil, vs[1:]
		}
		v := vs[0]
		if v.IsError() {
			return r.s.valueErr([]byte(scanCmd), v)
		}
		if len(v.Elems) != 2 {
			return fmt.Errorf("source %s: unexpected %s reply", r.s.cfg.Dial.Addr, scanCmd)
		}
		items := v.Elems[1].Elems
		if (swap || fieldTTLs) && len(items)%2 != 0 {
			return fmt.Errorf("source %s: unexpected %s reply", r.s.cfg.Dial.Addr, scanCmd)
		}
		if len(items) > 0 {
			b := resp.AppendArrayHeader(r.o.buf, 2+len(items))
			b = resp.AppendBulk(b, cmd)
			b = resp.AppendBulk(b, r.key)
			for i := range items {
				j := i
				if swap {
					j ^= 1
				}
				b = resp.AppendBulk(b, items[j].Str)
			}
			r.o.buf = b
			if fieldTTLs && !r.s.noFieldTTL {
				ttlCmd = [][]byte{bHPEXPIRETIME, r.key, bFIELDS, strconv.AppendInt(nil, int64(len(items)/2), 10)}
				for i := 0; i < len(items); i += 2 {
					ttlCmd = append(ttlCmd, items[i].Str)
				}
			}
		}
		r.account(valueBytes(v))
		if err := r.o.piece(); err != nil {
			return err
		}
		cursor = v.Elems[0].Str
		if string(cursor) == "0" {
			break
		}
	}
	if ttlCmd == nil {
		return nil
	}
	vs, err := roundTrip(r.c, ttlCmd)
	if err != nil {
		return fmt.Errorf("source %s: %w", r.s.cfg.Dial.Addr, err)
	}
	return r.fieldTTLs(ttlCmd, vs[0])
}

// fieldTTLs writes HPEXPIREAT for the fields of ttlCmd (HPEXPIRETIME key
// FIELDS n field…) that v, its reply, gives an expiry time. A source that
// does not know the command has no field TTLs; one that refuses it (ACL)
// may have them: they are lost, with a warning, once.
func (r *bigRead) fieldTTLs(ttlCmd [][]byte, v resp.Value) error {
	if v.IsError() {
		msg := string(v.Str)
		switch {
		case strings.HasPrefix(msg, "WRONGTYPE"):
			return errChanged
		case !strings.Contains(strings.ToLower(msg), "unknown command"):
			r.s.cfg.Log.Warn().Str("error", clip(msg)).Msg("the source refuses HPEXPIRETIME (said once): hashes read in pieces are copied without their field TTLs")
		}
		r.s.noFieldTTL = true
		return nil
	}
	names := ttlCmd[4:]
	for i, e := range v.Elems {
		// -1: no TTL; -2: the field is gone since the SCAN (its
		// notification reads the key again).
		if e.Kind != resp.Integer || e.Int <= 0 || i >= len(names) {
			continue
		}
		r.o.buf = resp.AppendCommand(r.o.buf, bHPEXPIREAT, r.key, strconv.AppendInt(nil, e.Int, 10), bFIELDS, bOne, names[i])
		if err := r.o.piece(); err != nil {
			return err
		}
	}
	return nil
}

// list reads a list in LRANGE windows into RPUSH batches.
func (r *bigRead) list() error {
	for start := 0; ; start += r.n {
		vs, err := roundTrip(r.c, [][]byte{[]byte("LRANGE"), r.key, []byte(strconv.Itoa(start)), []byte(strconv.Itoa(start + r.n - 1))})
		if err != nil {
			return fmt.Errorf("source %s: %w", r.s.cfg.Dial.Addr, err)
		}
		v := vs[0]
		if v.IsError() {
			return r.s.valueErr([]byte("LRANGE"), v)
		}
		if len(v.Elems) == 0 {
			return nil
		}
		b := resp.AppendArrayHeader(r.o.buf, 2+len(v.Elems))
		b = resp.AppendBulk(b, bRPUSH)
		b = resp.AppendBulk(b, r.key)
		for _, e := range v.Elems {
			b = resp.AppendBulk(b, e.Str)
		}
		r.o.buf = b
		r.account(valueBytes(v))
		if err := r.o.piece(); err != nil {
			return err
		}
		if len(v.Elems) < r.n {
			return nil
		}
	}
}

// str reads a string in GETRANGE windows into SET and APPENDs.
func (r *bigRead) str() error {
	for off := 0; ; off += pieceBytes {
		vs, err := roundTrip(r.c, [][]byte{[]byte("GETRANGE"), r.key, []byte(strconv.Itoa(off)), []byte(strconv.Itoa(off + pieceBytes - 1))})
		if err != nil {
			return fmt.Errorf("source %s: %w", r.s.cfg.Dial.Addr, err)
		}
		v := vs[0]
		if v.IsError() {
			return r.s.valueErr([]byte("GETRANGE"), v)
		}
		if len(v.Str) == 0 && off > 0 {
			return nil
		}
		cmd := bAPPEND
		if off == 0 {
			cmd = bSET
		}
		r.o.buf = resp.AppendCommand(r.o.buf, cmd, r.key, v.Str)
		r.account(len(v.Str))
		if err := r.o.piece(); err != nil {
			return err
		}
		if len(v.Str) < pieceBytes {
			return nil
		}
	}
}

// fields returns a flat array reply of name/value pairs as a map of its
// names.
func fields(v resp.Value) map[string]resp.Value {
	m := make(map[string]resp.Value, len(v.Elems)/2)
	for i := 0; i+1 < len(v.Elems); i += 2 {
		m[string(v.Elems[i].Str)] = v.Elems[i+1]
	}
	return m
}

// stream reads a stream: its entries in XRANGE windows into XADDs, its
// last id and counters (XINFO STREAM) into XSETID, then each group (XINFO
// GROUPS) into XGROUP CREATE, its consumers (XINFO CONSUMERS) into XGROUP
// CREATECONSUMER and its pending entries (XPENDING windows) into XCLAIM …
// FORCE JUSTID. As when package rdb rewrites a stream: consumers' seen
// times are not carried over (no command sets them), and a pending entry
// whose stream entry was deleted cannot be recreated (XCLAIM ignores it).
func (r *bigRead) stream() error {
	addr := r.s.cfg.Dial.Addr
	start := []byte("-")
	count := []byte(strconv.Itoa(r.n))
	added := 0
	for {
		vs, err := roundTrip(r.c, [][]byte{[]byte("XRANGE"), r.key, start, []byte("+"), []byte("COUNT"), count})
		if err != nil {
			return fmt.Errorf("source %s: %w", addr, err)
		}
		v := vs[0]
		if v.IsError() {
			return r.s.valueErr([]byte("XRANGE"), v)
		}
		for _, e := range v.Elems {
			if len(e.Elems) != 2 {
				return fmt.Errorf("source %s: unexpected XRANGE reply", addr)
			}
			b := resp.AppendArrayHeader(r.o.buf, 3+len(e.Elems[1].Elems))
			b = resp.AppendBulk(b, bXADD)
			b = resp.AppendBulk(b, r.key)
			b = resp.AppendBulk(b, e.Elems[0].Str)
			for _, f := range e.Elems[1].Elems {
				b = resp.AppendBulk(b, f.Str)
			}
			r.o.buf = b
			added++
		}
		r.account(valueBytes(v))
		if err := r.o.piece(); err != nil {
			return err
		}
		if len(v.Elems) < r.n {
			break
		}
		if start, err = nextID(v.Elems[len(v.Elems)-1].Elems[0].Str); err != nil {
			return fmt.Errorf("source %s: XRANGE: %w", addr, err)
		}
	}
	vs, err := roundTrip(r.c, [][]byte{[]byte("XINFO"), []byte("STREAM"), r.key}, [][]byte{[]byte("XINFO"), []byte("GROUPS"), r.key})
	if err != nil {
		return fmt.Errorf("source %s: %w", addr, err)
	}
	for _, v := range vs {
		if v.IsError() {
			return r.s.valueErr([]byte("XINFO"), v)
		}
	}
	info := fields(vs[0])
	last := info["last-generated-id"].Str
	if len(last) == 0 {
		return fmt.Errorf("XINFO STREAM: no last-generated-id: %w", errRefused)
	}
	if added == 0 {
		// An empty stream: created with an entry trimmed away at once.
		id := last
		if len(id) == 0 || string(id) == "0-0" {
			id = []byte("0-1")
		}
		if err := r.o.add(bXADD, r.key, bMAXLEN, bZeroArg, id, bPlaceholderField, bPlaceholderField); err != nil {
			return err
		}
	}
	setid := [][]byte{bXSETID, r.key, last}
	if ea, ok := info["entries-added"]; ok {
		setid = append(setid, []byte("ENTRIESADDED"), strconv.AppendInt(nil, ea.Int, 10))
	}
	if md, ok := info["max-deleted-entry-id"]; ok {
		setid = append(setid, []byte("MAXDELETEDID"), md.Str)
	}
	if err := r.o.add(setid...); err != nil {
		return err
	}
	for _, g := range vs[1].Elems {
		gf := fields(g)
		name := gf["name"].Str
		if len(name) == 0 || len(gf["last-delivered-id"].Str) == 0 {
			return fmt.Errorf("XINFO GROUPS: no name or last-delivered-id: %w", errRefused)
		}
		create := [][]byte{bXGROUP, bCREATE, r.key, name, gf["last-delivered-id"].Str}
		if er, ok := gf["entries-read"]; ok && !er.Null {
			create = append(create, []byte("ENTRIESREAD"), strconv.AppendInt(nil, er.Int, 10))
		}
		if err := r.o.add(create...); err != nil {
			return err
		}
		if err := r.group(name); err != nil {
			return err
		}
	}
	return nil
}

// group reads one stream group's consumers and pending entries.
func (r *bigRead) group(name []byte) error {
	addr := r.s.cfg.Dial.Addr
	vs, err := roundTrip(r.c, [][]byte{[]byte("XINFO"), []byte("CONSUMERS"), r.key, name})
	if err != nil {
		return fmt.Errorf("source %s: %w", addr, err)
	}
	if vs[0].IsError() {
		return r.s.valueErr([]byte("XINFO"), vs[0])
	}
	for _, cv := range vs[0].Elems {
		if err := r.o.add(bXGROUP, bCREATECONSUMER, r.key, name, fields(cv)["name"].Str); err != nil {
			return err
		}
	}
	start := []byte("-")
	count := []byte(strconv.Itoa(r.n))
	for {
		vs, err := roundTrip(r.c, [][]byte{[]byte("XPENDING"), r.key, name, start, []byte("+"), count})
		if err != nil {
			return fmt.Errorf("source %s: %w", addr, err)
		}
		v := vs[0]
		if v.IsError() {
			return r.s.valueErr([]byte("XPENDING"), v)
		}
		for _, p := range v.Elems {
			if len(p.Elems) != 4 {
				return fmt.Errorf("source %s: unexpected XPENDING reply", addr)
			}
			// id, consumer, idle ms, deliveries
			r.o.buf = resp.AppendCommand(r.o.buf, bXCLAIM, r.key, name, p.Elems[1].Str, bZeroArg, p.Elems[0].Str,
				[]byte("IDLE"), strconv.AppendInt(nil, p.Elems[2].Int, 10),
				[]byte("RETRYCOUNT"), strconv.AppendInt(nil, p.Elems[3].Int, 10),
				[]byte("FORCE"), []byte("JUSTID"))
		}
		r.account(valueBytes(v))
		if err := r.o.piece(); err != nil {
			return err
		}
		if len(v.Elems) < r.n {
			return nil
		}
		if start, err = nextID(v.Elems[len(v.Elems)-1].Elems[0].Str); err != nil {
			return fmt.Errorf("source %s: XPENDING: %w", addr, err)
		}
	}
}

// nextID returns the stream id that follows id (an exclusive "(id" range
// start needs Redis 6.2).
func nextID(id []byte) ([]byte, error) {
	ms, seq, ok := strings.Cut(string(id), "-")
	m, err1 := strconv.ParseUint(ms, 10, 64)
	q, err2 := strconv.ParseUint(seq, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("unexpected stream id %q", id)
	}
	if q == math.MaxUint64 {
		m, q = m+1, 0
	} else {
		q++
	}
	return fmt.Appendf(nil, "%d-%d", m, q), nil
}
