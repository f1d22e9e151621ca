package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/ferry-dev/ferry/apply"
	"github.com/ferry-dev/ferry/internal/notify"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/reader"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/source"
	"github.com/ferry-dev/ferry/spool"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/target"
)

// stream is one source shard's way to the target: its PSYNC reader, its
// spool, and the applier that turns what it spools into the target's
// commands. Streams run side by side; each keeps its own order.
type stream struct {
	j   *job
	i   int
	sh  *source.Shard // nil for an RDB import
	ps  sourceReader
	sp  *spool.Spool
	app *apply.Applier
	lag lagClock
	// startAt is where the reader begins: a position recorded on the
	// target, or nothing (a full resync).
	startAt reader.Start

	live      chan struct{} // closed once the first snapshot is applied (or the stream resumed)
	sweep     bool          // the next snapshot must sweep what earlier data left behind
	rdbSize   atomic.Int64
	rdbOff    atomic.Int64
	processed atomic.Int64    // offset of the last stream command the applier took, as published
	procNote  notify.Notifier // processed moved
	phase     atomic.Pointer[status.Phase]
	// expectKeys is the source's key count when the attempt began (-1
	// unknown): a diskless snapshot's size is known only at its end, so
	// its progress is told by keys.
	expectKeys atomic.Int64
	// took is, while the stream applies commands, the end of the last one
	// the applier took: published to processed every publishEvery commands
	// and whenever the consumer waits (see publish).
	took, published int64
	sincePublish    int
	// inSnapshot: the consumer is reading a snapshot, whose batches idle
	// leaves to fill up (consumer goroutine only).
	inSnapshot bool
}

// sourceReader reads one source shard into the stream's spool: a
// *reader.PSync, a *reader.Scan, or a *reader.Auto (PSYNC, falling back to
// scanning when the source refuses replication).
type sourceReader interface {
	Run(ctx context.Context, start reader.Start) error
	Stats() reader.Stats
	AckNow()
}

// scanBarrier is, when the stream reads its source by scanning, the stream
// offset by which every change the source made before the call is emitted
// (ok=false: the stream reads with PSYNC).
func (s *stream) scanBarrier(ctx context.Context) (off int64, ok bool, err error) {
	b, isScan := s.ps.(interface {
		Barrier(ctx context.Context) (int64, error)
	})
	if !isScan || s.ps.Stats().Mode != "scan" {
		return 0, false, nil
	}
	off, err = b.Barrier(ctx)
	return off, true, err
}

// rewind reports whether everything the stream received after offset to
// left the data alone (see reader.Config.Rewind). It first lets the applier
// take all that was received.
//
// The applier may be held back by a target that is down: after rewindWait
// the answer is no, and the reader does a full resync instead.
func (s *stream) rewind(ctx context.Context, to int64) bool {
	received := s.ps.Stats().Received
	deadline := time.NewTimer(rewindWait)
	defer deadline.Stop()
	for {
		moved := s.procNote.Wait()
		if s.processed.Load() >= received {
			return s.app.DataEnd() <= to
		}
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-moved:
		}
	}
}

// rewindWait bounds how long rewind waits for the applier.
const rewindWait = 10 * time.Second

func (s *stream) setProcessed(off int64) {
	s.took, s.published = off, off
	s.processed.Store(off)
	s.procNote.Notify()
}

func (s *stream) setPhase(p status.Phase) { s.phase.Store(&p) }

// publishEvery is how many stream commands the consumer applies between two
// publications of its progress (processed, the applier's dataEnd): they are
// atomic stores, a measurable share of the apply path per command.
const publishEvery = 64

// tookCommand notes that the applier took the stream command ending at end.
func (s *stream) tookCommand(end int64) {
	s.took = end
	if s.sincePublish++; s.sincePublish >= publishEvery {
		s.publish()
	}
}

// publish makes what the consumer took visible to rewind: dataEnd first,
// so that a reader of processed finds a dataEnd at least as recent. Called
// from the consumer's goroutine only: every publishEvery commands, before it
// waits for the spool (idle), and when the stream ends.
func (s *stream) publish() {
	if s.took == s.published {
		return
	}
	s.sincePublish = 0
	s.app.PublishDataEnd()
	s.published = s.took
	s.processed.Store(s.took)
	s.procNote.Notify()
}

func (s *stream) Phase() status.Phase {
	if p := s.phase.Load(); p != nil {
		return *p
	}
	return ""
}

func (s *stream) markLive() {
	select {
	case <-s.live:
	default:
		close(s.live)
	}
}

// consume applies what the reader spooled, until the spool closes.
func (s *stream) consume(ctx context.Context, frames *reader.Frames) error {
	j, app := s.j, s.app
	for {
		if j.stopping.Load() {
			return nil
		}
		ev, err := frames.Next()
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		switch ev.Kind {
		case reader.FullSync:
			s.setProcessed(ev.Offset)
			s.setPhase(status.PhaseRDB)
			s.rdbSize.Store(ev.RDBSize)
			app.BeginSnapshot(ev.ReplID, ev.Offset, s.sweep)
			s.inSnapshot = true
			err := s.snapshot(ctx, frames.RDB())
			s.inSnapshot = false
			if errors.Is(err, reader.ErrEndOfData) {
				// The link dropped mid-snapshot; a new one follows and must
				// sweep what this one left behind.
				app.Log().Warn().Msg("snapshot cut off; waiting for a new one")
				app.Sink().DropUnit()
				s.sweep = true
				continue
			}
			if err != nil {
				return err
			}
			if err := s.endSnapshot(ctx); err != nil {
				return err
			}
			s.sweep = true // any later full resync follows this one's data
			s.markLive()
		case reader.Continue:
			app.SetReplID(ev.ReplID)
			s.setProcessed(ev.Offset)
			s.setPhase(status.PhaseStreaming)
			s.markLive()
		case reader.Stream:
			s.setPhase(status.PhaseStreaming)
			if err := s.stream(ctx, frames); err != nil && !errors.Is(err, reader.ErrEndOfData) {
				if j.stopping.Load() {
					return nil
				}
				return err
			}
		}
	}
}

// stream applies the command stream until a full resync interrupts it.
func (s *stream) stream(ctx context.Context, frames *reader.Frames) error {
	j, app := s.j, s.app
	rr := resp.NewReader(frames.Stream(), 1<<20)
	if j.c.MaxBulkLen > 0 {
		lim := resp.StreamLimits()
		lim.MaxBulk = j.c.MaxBulkLen
		rr.SetLimits(lim)
	}
	base := app.Offset()
	defer s.publish()
	for {
		if j.stopping.Load() {
			app.Sink().DropUnit()
			return nil
		}
		args, err := rr.ReadCommand()
		if err != nil {
			app.DropTx()
			if errors.Is(err, reader.ErrEndOfData) {
				return err
			}
			if j.stopping.Load() || errors.Is(err, spool.ErrClosed) {
				return nil
			}
			return fmt.Errorf("%s: replication stream of %s at offset %d: %w", s.name(), s.ps.Stats().Addr, base+rr.Consumed(), err)
		}
		if len(args) == 0 {
			continue
		}
		if sw, ok := frames.SwitchAt(rr.Consumed()); ok {
			app.SetReplID(sw.ReplID)
			base = sw.Offset - sw.Pos
		}
		end := base + rr.Consumed()
		recv := frames.TimeAt(rr.Consumed())
		if err := app.Command(ctx, args, rr.Raw(), end, recv); err != nil {
			return err
		}
		s.tookCommand(end)
		app.Moves().Applied(s.i, recv)
	}
}

func (s *stream) name() string {
	if s.sh != nil {
		return s.sh.Name
	}
	return "import"
}

// snapshot applies one RDB as it arrives.
func (s *stream) snapshot(ctx context.Context, r io.Reader) error {
	j, app := s.j, s.app
	if on := j.o.OnSnapshot; on != nil {
		on(true)
		defer on(false)
	}
	rr := rdb.NewReader(r, rdb.Options{SpillDir: j.c.JobDir()})
	defer rr.Close()
	defer func() { j.addRDB(rr.Offset()) }()
	for {
		if j.stopping.Load() {
			return context.Canceled
		}
		rec, err := rr.Next()
		if err == io.EOF {
			s.rdbOff.Store(rr.Offset())
			return nil
		}
		if err != nil {
			if errors.Is(err, reader.ErrEndOfData) {
				return reader.ErrEndOfData
			}
			return fmt.Errorf("snapshot: %w", err)
		}
		s.rdbOff.Store(rr.Offset())
		err = app.Record(ctx, rec, rr.Version())
		rec.Release()
		if err != nil {
			return err
		}
	}
}

// endSnapshot makes the applied snapshot the target's state: everything is
// flushed and acknowledged, stale keys are swept when needed, and the
// stream's position turns live.
func (s *stream) endSnapshot(ctx context.Context) error {
	j, app := s.j, s.app
	if err := app.Sink().Flush(ctx); err != nil {
		return err
	}
	if err := j.drain(ctx); err != nil {
		return err
	}
	if keep := app.SnapshotKeys(); keep != nil {
		s.setPhase(status.PhaseSweeping)
		if err := j.sweep(ctx, keep, s.sh); err != nil {
			return err
		}
	}
	if err := app.GoLive(ctx); err != nil {
		return err
	}
	s.setPhase(status.PhaseStreaming)
	app.Log().Info().Int64("keys", app.Keys.Load()).Float64("elapsed_s", round1(sinceSeconds(j.start))).Msg("snapshot applied")
	return nil
}

// importFile applies an RDB file as the snapshot.
func (s *stream) importFile(ctx, stopCtx context.Context) error {
	j := s.j
	if err := j.checkRDBOnly(j.c.RDB); err != nil {
		return err
	}
	f, err := os.Open(j.c.RDB)
	if err != nil {
		return fmt.Errorf("rdb file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		s.rdbSize.Store(st.Size())
	}
	s.setPhase(status.PhaseImport)
	s.app.BeginSnapshot("", 0, s.sweep)
	stop := context.AfterFunc(stopCtx, func() { j.stopping.Store(true) })
	defer stop()
	if err := s.snapshot(ctx, f); err != nil {
		if j.stopping.Load() {
			return errors.New("import interrupted")
		}
		return fmt.Errorf("%s: %w", j.c.RDB, err)
	}
	if err := notRDBOnly(j.c.RDB, s.rdbOff.Load(), s.rdbSize.Load()); err != nil {
		return err
	}
	if err := s.app.Sink().Flush(ctx); err != nil {
		return err
	}
	if err := j.drain(ctx); err != nil {
		return err
	}
	if keep := s.app.SnapshotKeys(); keep != nil {
		return j.sweep(ctx, keep, nil)
	}
	return nil
}

// applied is the stream's source offset the target has applied on every
// master, 0 before the stream's first snapshot is complete.
func (s *stream) applied() int64 {
	return target.LowWatermark(s.j.writers(), s.i)
}

// appliedOrChange is applied() and a channel closed when it may have grown:
// the change notice of the writer holding it back (nil when there is no
// writer). A waiter re-reads after the channel closes.
func (s *stream) appliedOrChange() (int64, <-chan struct{}) {
	return target.LowWatermarkOrChange(s.j.writers(), s.i)
}
