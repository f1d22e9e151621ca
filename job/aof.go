package job

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/ferry-dev/ferry/aof"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/status"
)

// importAOF applies an AOF (see package aof) the way redis-server loads it
// at start: the base RDB, if the first file starts with one, through the
// snapshot path of an RDB import; then every command of every file through
// the applier, as the live stream's commands are (filters, db_map,
// MULTI/EXEC, routing to the target's masters).
//
// A rerun after an interrupted import (the job's markers are on the target)
// starts over: the base is restored again and the keys it does not hold are
// swept, so the commands, which are not idempotent (INCR, RPUSH…), apply to
// exactly the base again. A completed import removes its markers, so a rerun
// onto the target it filled meets target_nonempty (refused by default).
func (s *stream) importAOF(ctx, stopCtx context.Context) error {
	j, app := s.j, s.app
	src, err := aof.Open(j.c.AOF)
	if err != nil {
		return err
	}
	r := aof.NewReader(src, aof.Options{MaxArg: j.maxArg()})
	defer r.Close()
	s.setPhase(status.PhaseImport)
	app.BeginSnapshot("", 0, s.sweep)
	stop := context.AfterFunc(stopCtx, func() { j.stopping.Store(true) })
	defer stop()
	interrupted := errors.New("import interrupted")

	rd, size, ok, err := r.RDB()
	if err != nil {
		return err
	}
	if ok {
		s.rdbSize.Store(size)
		if err := s.snapshot(ctx, rd); err != nil {
			if j.stopping.Load() {
				return interrupted
			}
			return fmt.Errorf("aof: %s: %w", r.File(), err)
		}
		if err := r.SkipRDB(s.rdbOff.Load()); err != nil {
			return err
		}
	}
	// The base (possibly none) is the snapshot: applied, acknowledged and,
	// after an interrupted run, swept before any command of the AOF.
	if err := s.endSnapshot(ctx); err != nil {
		return err
	}

	file := ""
	var txCommands int64 // commands counted before the open transaction
	for {
		if j.stopping.Load() {
			app.Sink().DropUnit()
			return interrupted
		}
		c, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			app.Sink().DropUnit()
			return err
		}
		if c.File != file {
			// redis-server loads every file with a fresh client: db 0.
			file = c.File
			app.SetDB(0)
		}
		if bytes.EqualFold(c.Args[0], bMulti) {
			txCommands = app.Commands.Load()
		}
		if err := app.Command(ctx, functionLoadReplace(c.Args), nil, c.End, time.Time{}); err != nil {
			return fmt.Errorf("aof: %s: command at offset %d: %w", c.File, c.Offset, err)
		}
	}
	if tr := r.Truncated(); tr != nil {
		if app.InTx() {
			// The transaction has no EXEC: nothing of it is applied, as
			// redis-server reverts it.
			app.DropTx()
			app.Commands.Store(txCommands)
		}
		what := "a command"
		if tr.Multi {
			what = "a MULTI/EXEC transaction"
		}
		app.Log().Warn().Str("file", tr.File).Int64("offset", tr.Offset).Int64("bytes_left_out", tr.Size-tr.Offset).
			Msgf("the AOF's last file ends inside %s: applied up to that offset and left the rest out, as redis-server does with aof-load-truncated yes", what)
		j.mu.Lock()
		j.sum.AOFTruncated = tr
		j.mu.Unlock()
	}
	if err := app.Flush(ctx); err != nil {
		return err
	}
	return j.drain(ctx)
}

// maxArg bounds one argument of an AOF command: the target refuses bigger
// ones anyway (proto-max-bulk-len).
func (j *job) maxArg() int64 {
	m := int64(512 << 20)
	for _, n := range j.tgt.Nodes() {
		if n.MaxBulk > 0 {
			m = max(m, n.MaxBulk)
		}
	}
	return m
}

var (
	bFunction = []byte("FUNCTION")
	bLoad     = []byte("LOAD")
	bReplace  = []byte("REPLACE")
	bMulti    = []byte("MULTI")
)

// functionLoadReplace makes FUNCTION LOAD replace a library of the same
// name: an AOF rewrite writes FUNCTION LOAD without REPLACE, and a rerun
// after an interrupted import finds the library loaded already.
func functionLoadReplace(args [][]byte) [][]byte {
	if len(args) < 3 || !bytes.EqualFold(args[0], bFunction) || !bytes.EqualFold(args[1], bLoad) {
		return args
	}
	if len(args) > 3 && bytes.EqualFold(args[2], bReplace) {
		return args
	}
	out := make([][]byte, 0, len(args)+1)
	out = append(out, args[0], args[1], bReplace)
	return append(out, args[2:]...)
}

// checkRDBOnly refuses, before anything is written, an RDB file that goes
// on after its RDB part: an AOF with an RDB preamble, whose commands an RDB
// import would leave out. Only a file that ends like an AOF (\r\n) is framed
// to find where its RDB ends; importFile checks the end again.
func (j *job) checkRDBOnly(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rdb file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("rdb file: %w", err)
	}
	var tail [2]byte
	if st.Size() < 2 {
		return nil
	}
	if _, err := f.ReadAt(tail[:], st.Size()-2); err != nil || string(tail[:]) != "\r\n" {
		return nil
	}
	rr := rdb.NewReader(f, rdb.Options{SpillDir: j.c.JobDir()})
	defer rr.Close()
	for {
		rec, err := rr.Next()
		if err == io.EOF {
			return notRDBOnly(path, rr.Offset(), st.Size())
		}
		if err != nil {
			return nil // the import reports it
		}
		rec.Release()
	}
}

// notRDBOnly is the refusal of a file with end bytes after its RDB part of
// end bytes.
func notRDBOnly(path string, end, size int64) error {
	if end >= size {
		return nil
	}
	return fmt.Errorf("%s goes on after its RDB part (%d of %d bytes): it is an AOF with an RDB preamble, and an RDB import would leave its commands out; import it with --aof %s (aof = %q)",
		path, end, size, path, path)
}
