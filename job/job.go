// Package job runs one ferry job: a source (a live master read with PSYNC, or
// an RDB file) applied to a target through the spool, the applier and the
// writers, until it is stopped (sync), caught up (migrate) or done (import).
package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"ferry/conf"
	"ferry/dial"
	"ferry/rdb"
	"ferry/reader"
	"ferry/resp"
	"ferry/spool"
	"ferry/writer"
)

// Options configure a run.
type Options struct {
	Conf conf.Job
	// Migrate ends the run once the target has applied everything the
	// source had when the snapshot was applied.
	Migrate bool
	Log     zerolog.Logger
	// Throttle, if set, delays writer batches (rate limits; tests use it to
	// make a slow target).
	Throttle func(ctx context.Context, ops, bytes int) error
	// IOTimeout overrides the writers' reply deadline (tests).
	IOTimeout time.Duration
	// DrainTimeout bounds the graceful stop (default 60 s).
	DrainTimeout time.Duration
	// Observe, if set, is called once at the start with a function that
	// returns the job's live state (for status pages, metrics and tests).
	Observe func(state func() State)
}

// State is a job's live state.
type State struct {
	Phase     string
	StartedAt time.Time
	Shards    []ShardState // one per source shard; none for an RDB import
	Writers   []WriterState
	Keys      int64 // snapshot keys written so far
	Expired   int64 // snapshot keys skipped: already expired
	Swept     int64 // stale keys deleted after full resyncs
	Commands  int64 // stream commands applied so far
	RDBSize   int64 // -1: unknown (diskless)
	RDBParsed int64
}

// ShardState is the state of one source shard's link.
type ShardState struct {
	Name, Addr    string
	Reader        reader.Stats
	Spool         spool.Stats
	AppliedOffset int64
	LagBytes      int64
	LagSeconds    float64
}

// WriterState is one writer's state.
type WriterState struct {
	Name, Addr string
	Stats      writer.Stats
	Applied    writer.Position
}

// Summary is what a run did.
type Summary struct {
	Keys         int64 // snapshot keys written
	Expired      int64 // snapshot keys skipped because already expired
	Commands     int64 // stream commands applied
	RDBBytes     int64
	Elapsed      time.Duration
	FullSyncs    int64
	PartialSyncs int64
	Swept        int64 // stale keys deleted after a full resync
	Applied      writer.Position
	Lag          int64 // source bytes received and not applied at the end
}

// ErrTargetNotEmpty is wrapped by the refusal to write into a target that
// holds keys ferry did not write.
var ErrTargetNotEmpty = errors.New("target not empty")

type job struct {
	o   Options
	c   conf.Job
	log zerolog.Logger

	start    time.Time
	rewound  bool // a writer reported the target went back: resume from its marker
	stopping atomic.Bool
	seq      atomic.Uint64 // unit numbers (see applier.seq)

	mu      sync.Mutex
	sum     Summary
	app     *applier
	tgt     target
	psync   *reader.PSync
	sp      *spool.Spool
	rdbOff  atomic.Int64 // RDB bytes parsed
	rdbSize atomic.Int64
	phase   atomic.Pointer[string]
	lag     lagClock
}

// Run runs the job until ctx is cancelled (sync), the target caught up
// (migrate), or the RDB file is imported.
func Run(ctx context.Context, o Options) (Summary, error) {
	j := &job{o: o, c: o.Conf, log: o.Log, start: time.Now()}
	if j.o.DrainTimeout <= 0 {
		j.o.DrainTimeout = 60 * time.Second
	}
	j.setPhase("connecting")
	if o.Observe != nil {
		o.Observe(j.state)
	}
	for {
		err := j.attempt(ctx)
		var rw *writer.RewoundError
		if errors.As(err, &rw) && ctx.Err() == nil {
			j.log.Warn().Err(err).Msg("the target lost writes it had acknowledged; resuming from the position it holds")
			j.rewound = true
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		j.mu.Lock()
		s := j.sum
		j.mu.Unlock()
		s.Elapsed = time.Since(j.start)
		return s, err
	}
}

func (j *job) setPhase(p string) { j.phase.Store(&p) }

// state is the job's live state; safe for concurrent use.
func (j *job) state() State {
	app, ws, ps := j.parts()
	st := State{Phase: j.Phase(), StartedAt: j.start, RDBSize: j.rdbSize.Load(), RDBParsed: j.rdbOff.Load()}
	j.mu.Lock()
	sp := j.sp
	st.Keys, st.Commands, st.Expired, st.Swept = j.sum.Keys, j.sum.Commands, j.sum.Expired, j.sum.Swept
	j.mu.Unlock()
	if app != nil {
		st.Keys += app.keys.Load()
		st.Commands += app.commands.Load()
		st.Expired += app.expired.Load()
	}
	for i, w := range ws {
		st.Writers = append(st.Writers, WriterState{Name: fmt.Sprintf("ferry-writer-%d", i), Addr: w.Addr(), Stats: w.Stats(), Applied: w.Applied()})
	}
	if ps != nil {
		sh := ShardState{Name: "ferry-reader-0", Addr: j.c.Source.Redacted(), Reader: ps.Stats()}
		if sp != nil {
			sh.Spool = sp.Stats()
		}
		sh.AppliedOffset = j.appliedOffset()
		if sh.AppliedOffset > 0 {
			sh.LagBytes = max(sh.Reader.Received-sh.AppliedOffset, 0)
			sh.LagSeconds = j.lag.seconds(sh.AppliedOffset)
		}
		st.Shards = append(st.Shards, sh)
	}
	return st
}

func dialOptions(e conf.Endpoint, host string) (dial.Options, error) {
	t, err := e.TLSConfig()
	if err != nil {
		return dial.Options{}, err
	}
	return dial.Options{Addr: host, Username: e.Username, Password: e.Password, TLS: t, Timeout: e.DialTimeout}, nil
}

// openTarget connects to the target and tells a cluster from a server.
func (j *job) openTarget(ctx context.Context) (target, error) {
	c := j.c
	if len(c.Target.Hosts) == 0 {
		return nil, errors.New("no target address")
	}
	o, err := dialOptions(c.Target, c.Target.Hosts[0])
	if err != nil {
		return nil, err
	}
	n, err := openNode(ctx, o, c.Name)
	if err != nil {
		return nil, err
	}
	cl, err := isCluster(ctx, n.ctl)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("target %w", describeCtlErr(o.Addr, err))
	}
	if !cl {
		t, err := j.openStandalone(ctx, n)
		if err != nil {
			n.close()
		}
		return t, err
	}
	n.close()
	return j.openCluster(ctx, nil)
}

// attempt is one run of the machinery; a RewoundError makes Run start a new
// attempt from the target's markers.
func (j *job) attempt(ctx context.Context) error {
	c := j.c
	tgt, err := j.openTarget(ctx)
	if err != nil {
		return err
	}
	defer tgt.close()
	_, cluster := tgt.(*clusterTarget)
	found, pos, canResume := tgt.markers()
	if s := tgt.maxSeq(); s > j.seq.Load() {
		j.seq.Store(s)
	}
	sweep := found || j.rewound
	if !found && !j.rewound {
		if err := j.checkEmpty(ctx, tgt.nodes()); err != nil {
			return err
		}
	}
	app := &applier{
		job:     j,
		log:     j.log,
		dbMap:   c.DBMap,
		restore: c.Restore,
		fenced:  c.Fence != "off",
		seq:     &j.seq,
	}
	app.tgtRDB, app.maxBulk = 1<<30, 1<<62
	for _, n := range tgt.nodes() {
		app.tgtRDB, app.maxBulk = min(app.tgtRDB, n.rdbVer), min(app.maxBulk, n.maxBulk)
	}
	app.out = tgt.newSink(app)
	j.mu.Lock()
	j.app, j.tgt = app, tgt
	j.mu.Unlock()

	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	tgt.start(gctx, g)
	g.Go(func() error { return j.progress(gctx) })

	if c.RDB != "" {
		g.Go(func() error {
			defer cancelRun()
			if err := j.importFile(gctx, ctx, sweep); err != nil {
				return err
			}
			return j.finish(gctx, true)
		})
		return j.wait(g)
	}

	src, err := dialOptions(c.Source, c.Source.Hosts[0])
	if err != nil {
		return err
	}
	if cluster {
		if err := j.checkSourceDBs(ctx, src); err != nil {
			return err
		}
	}
	sp, err := spool.New(spool.Options{Dir: filepath.Join(c.JobDir(), "spool"), MemLimit: c.SpoolMemory, MaxDisk: c.SpoolMaxDisk})
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer sp.Close()
	// Whatever ends the run, a consumer waiting on the spool must wake up.
	defer context.AfterFunc(gctx, func() { sp.Close() })()
	start := reader.Start{}
	if canResume {
		start = reader.Start{ReplID: pos.ReplID, Offset: pos.Offset}
		app.replid, app.offset, app.db = pos.ReplID, pos.Offset, pos.DB
		app.resumed = true
		j.log.Info().Str("replid", pos.ReplID).Int64("offset", pos.Offset).Msg("resuming from the position recorded on the target")
	} else if found {
		j.log.Info().Msg("the target holds an unfinished or inconsistent sync of this job; a full resync follows")
	}
	ps := reader.NewPSync(reader.Config{
		Dial:  src,
		Name:  "ferry-reader-0",
		Log:   j.log.With().Str("conn", "ferry-reader-0").Logger(),
		Acked: func() int64 { return j.appliedOffset() },
	}, &spoolWriter{sp: sp, max: c.SpoolMaxDisk})
	app.ackNow = ps.AckNow
	j.mu.Lock()
	j.psync, j.sp = ps, sp
	j.mu.Unlock()

	readerCtx, stopReader := context.WithCancel(gctx)
	defer stopReader()
	live := make(chan struct{})
	stop := func() {
		if j.stopping.CompareAndSwap(false, true) {
			stopReader()
			sp.Close() // wakes the consumer
		}
	}
	g.Go(func() error {
		return ps.Run(readerCtx, start)
	})
	g.Go(func() error {
		defer cancelRun()
		frames := reader.NewFrames(sp, func() int64 { s := sp.Stats(); return s.Written - s.Read }, func() { j.idle(gctx) })
		err := j.consume(gctx, frames, sweep, live)
		if err != nil && !j.stopping.Load() {
			return err
		}
		return j.finish(gctx, j.o.Migrate)
	})
	var caughtUp <-chan struct{} // nil: sync runs until stopped
	if j.o.Migrate {
		caughtUp = j.caughtUp(gctx, live, src)
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
			j.log.Info().Msg("stopping: finishing in-flight writes")
		case <-gctx.Done():
			return nil
		case <-caughtUp:
			j.log.Info().Int64("offset", j.appliedOffset()).Msg("caught up with the source")
		}
		stop()
		return nil
	})
	return j.wait(g)
}

// checkSourceDBs refuses, before anything is written, a source with keys in
// a db that has no place in a cluster target (db 0 only).
func (j *job) checkSourceDBs(ctx context.Context, src dial.Options) error {
	ctl := newCtl(src)
	defer ctl.Close()
	ks, err := keyspace(ctx, ctl)
	if err != nil {
		return fmt.Errorf("source %w", describeCtlErr(src.Addr, err))
	}
	for db, n := range ks {
		if n == 0 || db == 0 {
			continue
		}
		if t, ok := j.c.DBMap[db]; ok && t == 0 {
			continue
		}
		return fmt.Errorf("the source has %d keys in db %d, but a cluster target has db 0 only: set db_map = { %d = 0 } (or filter db %d out)", n, db, db, db)
	}
	return nil
}

func (j *job) wait(g *errgroup.Group) error {
	err := g.Wait()
	j.mu.Lock()
	if j.tgt != nil {
		ws := j.tgt.writers()
		j.sum.Applied = ws[0].Applied()
		for _, w := range ws[1:] {
			if p := w.Applied(); p.Offset < j.sum.Applied.Offset {
				j.sum.Applied = p
			}
		}
	}
	if j.psync != nil {
		st := j.psync.Stats()
		j.sum.FullSyncs, j.sum.PartialSyncs = st.FullSyncs, st.PartialSyncs
		if st.Received > j.sum.Applied.Offset && j.sum.Applied.State == writer.StateLive {
			j.sum.Lag = st.Received - j.sum.Applied.Offset
		}
	}
	if j.app != nil {
		j.sum.Keys += j.app.keys.Swap(0)
		j.sum.Expired += j.app.expired.Swap(0)
		j.sum.Commands += j.app.commands.Swap(0)
	}
	j.mu.Unlock()
	return err
}

func errorPolicy(s string) writer.ErrorPolicy {
	if s == "skip" {
		return writer.Skip
	}
	return writer.Stop
}

// checkEmpty enforces target_nonempty on a target this job never wrote to.
func (j *job) checkEmpty(ctx context.Context, nodes []*node) error {
	var parts []string
	for _, n := range nodes {
		foreign, err := n.foreignKeys(ctx)
		if err != nil {
			return err
		}
		dbs := make([]int, 0, len(foreign))
		for db := range foreign {
			dbs = append(dbs, db)
		}
		slices.Sort(dbs)
		for _, db := range dbs {
			parts = append(parts, fmt.Sprintf("%s db%d: %d keys", n.addr.Addr, db, foreign[db]))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	desc := strings.Join(parts[:min(len(parts), 4)], ", ")
	switch j.c.TargetNonempty {
	case "flush":
		j.log.Warn().Str("keys", desc).Msg("target_nonempty = flush: emptying the target (FLUSHALL)")
		for _, n := range nodes {
			if err := n.ctl.FlushAll(ctx).Err(); err != nil {
				return fmt.Errorf("target %s: FLUSHALL: %w", n.addr.Addr, err)
			}
		}
	case "overwrite":
		j.log.Warn().Str("keys", desc).Msg("target_nonempty = overwrite: writing over a target that already holds keys")
	default:
		return fmt.Errorf("%w: it already holds keys (%s); set target_nonempty = \"overwrite\" to write over them or \"flush\" to empty it first",
			ErrTargetNotEmpty, desc)
	}
	return nil
}

// appliedOffset is the source offset the target has applied, 0 before the
// first snapshot is complete.
func (j *job) appliedOffset() int64 {
	_, ws, _ := j.parts()
	var off int64 = -1
	for _, w := range ws {
		p := w.Applied()
		if p.State != writer.StateLive {
			return 0
		}
		if off < 0 || p.Offset < off {
			off = p.Offset
		}
	}
	return max(off, 0)
}

// idle is called when the consumer is about to wait for the source: what is
// batched goes out now, so that latency stays low under a light load.
func (j *job) idle(ctx context.Context) {
	if j.app != nil && !j.app.inTx {
		if err := j.app.out.flush(ctx); err != nil {
			j.log.Debug().Err(err).Msg("idle flush")
		}
	}
}

// consume applies what the reader spooled.
func (j *job) consume(ctx context.Context, frames *reader.Frames, sweep bool, live chan struct{}) error {
	app := j.app
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
			j.setPhase("rdb")
			j.rdbSize.Store(ev.RDBSize)
			app.beginSnapshot(ev.ReplID, ev.Offset, sweep)
			err := j.snapshot(ctx, frames.RDB(), ev.RDBSize)
			if errors.Is(err, reader.ErrEndOfData) {
				// The link dropped mid-snapshot; a new one follows and must
				// sweep what this one left behind.
				j.log.Warn().Msg("snapshot cut off; waiting for a new one")
				app.out.dropUnit()
				sweep = true
				continue
			}
			if err != nil {
				return err
			}
			if err := j.endSnapshot(ctx, app.sweep); err != nil {
				return err
			}
			sweep = true // any later full resync follows this one's data
			select {
			case <-live:
			default:
				close(live)
			}
		case reader.Continue:
			if app.replid != ev.ReplID {
				app.replid = ev.ReplID
			}
			j.setPhase("streaming")
			select {
			case <-live:
			default:
				close(live)
			}
		case reader.Stream:
			j.setPhase("streaming")
			if err := j.stream(ctx, frames); err != nil && !errors.Is(err, reader.ErrEndOfData) {
				if j.stopping.Load() {
					return nil
				}
				return err
			}
		}
	}
}

// stream applies the command stream until a full resync interrupts it.
func (j *job) stream(ctx context.Context, frames *reader.Frames) error {
	app := j.app
	rr := resp.NewReader(frames.Stream(), 1<<20)
	base := app.offset
	for {
		if j.stopping.Load() {
			app.out.dropUnit()
			return nil
		}
		args, err := rr.ReadCommand()
		if err != nil {
			app.out.dropUnit()
			app.inTx = false
			if errors.Is(err, reader.ErrEndOfData) {
				return err
			}
			if j.stopping.Load() || errors.Is(err, spool.ErrClosed) {
				return nil
			}
			return fmt.Errorf("replication stream at offset %d: %w", base+rr.Consumed(), err)
		}
		if len(args) == 0 {
			continue
		}
		end := base + rr.Consumed()
		if id, ok := frames.ReplIDAt(rr.Consumed()); ok {
			app.replid = id
		}
		if err := app.command(ctx, args, end); err != nil {
			return err
		}
	}
}

// snapshot applies one RDB as it arrives.
func (j *job) snapshot(ctx context.Context, r io.Reader, size int64) error {
	app := j.app
	rr := rdb.NewReader(r, rdb.Options{SpillDir: j.c.JobDir()})
	defer rr.Close()
	defer func() { j.addRDB(rr.Offset()) }()
	for {
		if j.stopping.Load() {
			return context.Canceled
		}
		rec, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, reader.ErrEndOfData) {
				return reader.ErrEndOfData
			}
			return fmt.Errorf("snapshot: %w", err)
		}
		j.rdbOff.Store(rr.Offset())
		err = app.record(ctx, rec, rr.Version())
		rec.Release()
		if err != nil {
			return err
		}
	}
}

func (j *job) addRDB(n int64) {
	j.mu.Lock()
	j.sum.RDBBytes += n
	j.mu.Unlock()
}

// endSnapshot makes the applied snapshot the target's state: everything is
// flushed and acknowledged, stale keys are swept when needed, and the marker
// turns live.
func (j *job) endSnapshot(ctx context.Context, keep *keySet) error {
	app := j.app
	if err := app.out.flush(ctx); err != nil {
		return err
	}
	if err := j.drain(ctx); err != nil {
		return err
	}
	if keep != nil {
		j.setPhase("sweeping")
		if err := j.sweep(ctx, keep); err != nil {
			return err
		}
		app.sweep = nil
	}
	app.snapshot = false
	if err := app.out.endUnit(ctx, app.livePos()); err != nil {
		return err
	}
	if err := app.out.flush(ctx); err != nil {
		return err
	}
	j.setPhase("streaming")
	j.log.Info().Int64("keys", app.keys.Load()).Dur("elapsed", time.Since(j.start)).Msg("snapshot applied")
	return nil
}

// sweep deletes the target's keys that the snapshot just applied does not
// have, on every master.
func (j *job) sweep(ctx context.Context, keep *keySet) error {
	var deleted int64
	for _, n := range j.tgt.nodes() {
		d, err := n.sweep(ctx, keep, func(int, string) bool { return true })
		deleted += d
		if err != nil {
			return err
		}
	}
	j.mu.Lock()
	j.sum.Swept += deleted
	j.mu.Unlock()
	j.log.Info().Int64("deleted", deleted).Msg("swept keys the new snapshot no longer has")
	return nil
}

func (j *job) drain(ctx context.Context) error {
	for _, w := range j.tgt.writers() {
		if err := w.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

// importFile applies an RDB file as the snapshot.
func (j *job) importFile(ctx, stopCtx context.Context, sweep bool) error {
	f, err := os.Open(j.c.RDB)
	if err != nil {
		return fmt.Errorf("rdb file: %w", err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		j.rdbSize.Store(st.Size())
	}
	j.setPhase("import")
	j.app.beginSnapshot("", 0, sweep)
	go func() {
		select {
		case <-stopCtx.Done():
			j.stopping.Store(true)
		case <-ctx.Done():
		}
	}()
	if err := j.snapshot(ctx, f, -1); err != nil {
		if j.stopping.Load() {
			return errors.New("import interrupted")
		}
		return fmt.Errorf("%s: %w", j.c.RDB, err)
	}
	if err := j.app.out.flush(ctx); err != nil {
		return err
	}
	if err := j.drain(ctx); err != nil {
		return err
	}
	if j.app.sweep != nil {
		return j.sweep(ctx, j.app.sweep)
	}
	return nil
}

// finish flushes and acknowledges everything, and for runs that end (migrate,
// import) removes the marker: the target then holds exactly the data.
func (j *job) finish(ctx context.Context, removeMarker bool) error {
	if j.app != nil {
		j.app.out.dropUnit()
		if err := j.app.out.flush(ctx); err != nil {
			return err
		}
	}
	dctx, cancel := context.WithTimeout(ctx, j.o.DrainTimeout)
	defer cancel()
	if err := j.drain(dctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("in-flight writes not acknowledged within %s; the target's marker records what was applied", j.o.DrainTimeout)
		}
		return err
	}
	if removeMarker {
		if err := j.tgt.removeMarkers(ctx); err != nil {
			return fmt.Errorf("remove markers: %w", err)
		}
	}
	return nil
}

// caughtUp closes its channel once the snapshot is live and the target has
// applied every write the source had at that moment.
func (j *job) caughtUp(ctx context.Context, live chan struct{}, src dial.Options) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		select {
		case <-live:
		case <-ctx.Done():
			return
		}
		ctl := newCtl(src)
		defer ctl.Close()
		var target int64 = -1
		for ctx.Err() == nil {
			if target < 0 {
				if off, err := masterOffset(ctx, ctl); err == nil {
					target = off
				}
			}
			if target >= 0 && j.appliedOffset() >= target {
				close(done)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return done
}

// spoolWriter is where the reader writes: a spool past its disk limit is a
// failure the job reports, never silent loss.
type spoolWriter struct {
	sp  *spool.Spool
	max int64
}

func (s *spoolWriter) Write(p []byte) (int, error) {
	n, err := s.sp.Write(p)
	if errors.Is(err, spool.ErrFull) {
		return n, fmt.Errorf("the spool reached spool_max_disk (%d bytes): the target cannot keep up with the source", s.max)
	}
	return n, err
}

// Phase is the job's phase for status lines.
func (j *job) Phase() string {
	if p := j.phase.Load(); p != nil {
		return *p
	}
	return ""
}
