package apply

import (
	"context"
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/router"
)

// rewriteRestore writes a stream RESTORE that the target cannot take as
// such — its payload is past the target's proto-max-bulk-len, or in an RDB
// version the target does not know, or restore = "never" — as plain
// commands (DEL, then the value in batches, then PEXPIREAT), like a snapshot
// record. The scan reader sends every changed key as a RESTORE. It reports
// false when the RESTORE can go as it is.
//
// Every command but the last is its own unit at the offset before the
// RESTORE: fenced batches keep memory bounded for a big value, and if the
// run stops half-way the whole RESTORE is applied again, which DEL first
// makes idempotent.
func (a *Applier) rewriteRestore(ctx context.Context, args [][]byte, prev int64) (bool, error) {
	if len(args) < 4 || !eq(args[0], "RESTORE") || a.restore == conf.RestoreAlways {
		return false, nil
	}
	payload := args[3]
	if len(payload) < 10 {
		return false, nil
	}
	ver := int(binary.LittleEndian.Uint16(payload[len(payload)-10:]))
	if a.restore != conf.RestoreNever && int64(len(payload)) <= a.maxBulk && (a.tgtRDB == 0 || ver <= a.tgtRDB) {
		return false, nil
	}
	ttl, err := strconv.ParseInt(string(args[2]), 10, 64)
	if err != nil {
		return false, nil // malformed: the target says so
	}
	abs := false
	for _, o := range args[4:] {
		abs = abs || eq(o, "ABSTTL")
	}
	if ttl > 0 && !abs {
		ttl += time.Now().UnixMilli()
	}
	rec, err := rdb.ParseDump(a.db, args[1], payload, ttl)
	if err != nil {
		return true, fmt.Errorf("RESTORE of db %d key %q: %w", a.db, router.Clip(args[1]), err)
	}
	defer rec.Release()
	db := a.mapDB(a.db)
	end := a.offset
	var pending [][]byte
	err = rdb.Rewrite(rec, a.rewrite, func(cmd [][]byte) error {
		if pending != nil {
			// Not the last command: close it as its own unit (inside a
			// transaction the transaction is the unit).
			if err := a.addArgs(ctx, db, pending); err != nil {
				return err
			}
			if a.inTx {
				pending = nil
				return nil
			}
			a.offset = prev
			err := a.out.EndUnit(ctx, a.livePos())
			a.offset = end
			if err != nil {
				return err
			}
		}
		pending = make([][]byte, len(cmd)) // emit's args do not outlive the call
		for i, b := range cmd {
			pending[i] = append([]byte(nil), b...)
		}
		return nil
	})
	if err != nil {
		return true, fmt.Errorf("RESTORE of db %d key %q: %w", a.db, router.Clip(args[1]), err)
	}
	if pending != nil {
		// The last command ends with the RESTORE's own unit.
		return true, a.addArgs(ctx, db, pending)
	}
	return true, nil
}
