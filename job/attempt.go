// One attempt of a run: the target opened (and its lease taken), the source
// discovered, one stream per source shard, until the run ends or a rewind
// makes Run start another.

package job

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/apply"
	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/reader"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/source"
	"github.com/ferry-dev/ferry/spool"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/target"
	"github.com/ferry-dev/ferry/writer"
)

// openTarget connects to the target (see target.Open).
func (j *job) openTarget(ctx context.Context) (target.Target, error) {
	c := j.c
	cfg := target.Config{
		Job:           c.Name,
		Seeds:         c.Target.Hosts,
		Dial:          func(addr string) (dial.Options, error) { return ctl.DialOptions(c.Target, addr) },
		BatchMaxOps:   c.BatchMaxOps,
		BatchMaxBytes: c.BatchMaxBytes,
		Writer: writer.Config{
			Fence:             c.Fence != conf.FenceOff,
			MaxInflight:       c.MaxInflightBytes,
			IOTimeout:         j.o.ioTimeout,
			KeepaliveFallback: c.KeepaliveInterval,
			MaxConnAge:        c.MaxConnAge,
			RetryTimeout:      j.retryTimeout(),
			OnError:           errorPolicy(c.OnError),
			Log:               j.log,
			Throttle:          j.throttle,
		},
		Log:   j.log,
		Lease: targetLease{j},
	}
	return target.Open(ctx, cfg)
}

// retryTimeout is how long a writer retries an unreachable target: a sync
// of a live source keeps trying (and reports itself unready); a job that
// is meant to end gives up after retry_timeout.
func (j *job) retryTimeout() time.Duration {
	if !j.o.Migrate && j.c.RDB == "" {
		return 0
	}
	return j.c.RetryTimeout
}

// newApplier is the applier of stream i (its sink is made once it knows
// where the stream resumes: see target.Target.NewSink).
func (j *job) newApplier(i int, tgt target.Target) *apply.Applier {
	c := j.c
	log := j.log
	if i > 0 || !j.c.Import() {
		log = j.log.With().Str("conn", fmt.Sprintf("ferry-reader-%d", i)).Logger()
	}
	tgtRDB, maxBulk := 1<<30, int64(1<<62)
	for _, n := range tgt.Nodes() {
		tgtRDB, maxBulk = min(tgtRDB, n.RDBVersion), min(maxBulk, n.MaxBulk)
	}
	app := apply.New(apply.Config{
		Stream:      i,
		Log:         log,
		Job:         c.Name,
		DBMap:       c.DBMap,
		Filter:      j.filter,
		Moves:       j.moves,
		Table:       j.cmds.table,
		Known:       j.cmds.known,
		WaitApplied: j.waitApplied,
		Seq:         &j.seq,
		Restore:     c.Restore,
		Fenced:      c.Fence != conf.FenceOff,
		Fold:        c.Fold,
		SkipRefused: c.OnError == conf.OnErrorSkip,
		TargetRDB:   tgtRDB,
		MaxBulk:     maxBulk,
		NoFieldTTL:  !j.targetHoldsFieldTTLs(tgt),
		NoFunctions: !j.targetHoldsFunctions(),
		NoModules:   !j.holdsModules,
		Drop:        c.OnUnsupported == conf.UnsupportedDrop,
	})
	return app
}

func (j *job) onStreams(n int) {
	if j.o.OnStreams != nil {
		j.o.OnStreams(n)
	}
}

// attempt is one run of the machinery; a RewoundError makes Run start a new
// attempt from the target's markers.
func (j *job) attempt(ctx context.Context) error {
	c := j.c
	tgt, err := j.openTarget(ctx)
	if err != nil {
		return &openError{err}
	}
	defer tgt.Close()
	defer j.noteWrites(tgt)
	cluster := tgt.Cluster()
	found := tgt.Found()
	if s := tgt.MaxSeq(); s > j.seq.Load() {
		j.seq.Store(s)
	}
	j.cmds = commandInfo{table: builtinCommands(), known: j.targetCommands(ctx, tgt)}
	j.holdsModules = j.targetHoldsModules(ctx, tgt)
	var src *source.Source
	if c.RDB == "" && c.AOF == "" {
		if src, err = source.Open(ctx, source.Config{Endpoint: j.c.Source, Shards: j.c.Shards}); err != nil {
			return &openError{err}
		}
		j.cmds.table = j.sourceCommands(ctx, src)
	}
	j.setDown(restartDown{}) // the peers are reached again
	// Before anything is written (or flushed) on the target.
	if err := j.checkCapabilities(ctx, tgt, src); err != nil {
		return err
	}
	if !found && !j.rewound {
		if err := j.checkEmpty(ctx, tgt.Nodes()); err != nil {
			return err
		}
	}
	j.mu.Lock()
	j.tgt, j.streams = tgt, nil
	j.mu.Unlock()

	runCtx, cancelRun := context.WithCancel(j.hard)
	g, gctx := errgroup.WithContext(runCtx)
	// Whatever way the attempt ends, its goroutines are stopped and joined
	// before the target closes and the leases are given up: a writer still
	// connecting would register with a lease being released.
	defer func() {
		cancelRun()
		g.Wait()
	}()
	tgt.Start(gctx, g)
	g.Go(func() error { return j.renewLeases(gctx, tgt) })
	g.Go(func() error { return j.progress(gctx) })
	j.setPhase(status.PhaseRunning)

	if c.RDB != "" || c.AOF != "" {
		j.onStreams(1)
		s := &stream{j: j, i: 0, live: make(chan struct{}), sweep: found || j.rewound}
		s.rdbSize.Store(-1)
		s.app = j.newApplier(0, tgt)
		s.app.SetSink(tgt.NewSink(s.app))
		j.mu.Lock()
		j.streams = []*stream{s}
		j.mu.Unlock()
		g.Go(func() error {
			defer cancelRun()
			imp := s.importFile
			if c.AOF != "" {
				imp = s.importAOF
			}
			if err := imp(gctx, ctx); err != nil {
				return err
			}
			return j.finish(gctx, true)
		})
		return j.wait(g)
	}

	if src.Cluster {
		slots := make([][][2]int, len(src.Shards))
		for i, sh := range src.Shards {
			slots[i] = sh.Slots
		}
		j.moves = apply.NewMoves(slots, src.Foreign)
	}
	var streams []*stream
	j.shards = len(src.Shards)
	j.onStreams(len(src.Shards))
	for i, sh := range src.Shards {
		s, err := j.openStream(ctx, i, sh, tgt, cluster, found)
		if err != nil {
			for _, s := range streams {
				s.sp.Close()
			}
			return err
		}
		defer s.sp.Close()
		// Whatever ends the run, a consumer waiting on the spool must wake.
		defer context.AfterFunc(gctx, func() { s.sp.Close() })()
		streams = append(streams, s)
	}
	j.mu.Lock()
	j.streams = streams
	j.sum.Shards = len(streams)
	j.mu.Unlock()

	readerCtx, stopReaders := context.WithCancel(gctx)
	defer stopReaders()
	stop := func() {
		if j.stopping.CompareAndSwap(false, true) {
			stopReaders()
			for _, s := range streams {
				s.sp.Close() // wakes the consumers
			}
		}
	}
	var consumers sync.WaitGroup
	for _, s := range streams {
		g.Go(func() error { return s.ps.Run(readerCtx, s.startAt) })
		consumers.Add(1)
		g.Go(func() error {
			defer consumers.Done()
			frames := reader.NewFrames(s.sp, func() int64 { st := s.sp.Stats(); return st.Written - st.Read }, func() { s.idle(gctx) })
			err := s.consume(gctx, frames)
			if err != nil && !j.stopping.Load() {
				return err
			}
			return nil
		})
	}
	g.Go(func() error {
		consumers.Wait()
		defer cancelRun()
		if gctx.Err() != nil {
			return nil
		}
		// A migrate stopped before it caught up keeps its markers: a rerun
		// resumes instead of refusing a target that is not empty.
		return j.finish(gctx, j.o.Migrate && j.caught.Load())
	})
	var caughtUp <-chan struct{} // nil: sync runs until stopped
	if j.o.Migrate {
		if j.o.Cutover != nil {
			if err := j.checkCutover(ctx, streams); err != nil {
				return err
			}
		}
		caughtUp = j.caughtUp(gctx, streams)
	}
	g.Go(func() error {
		select {
		case <-ctx.Done():
			j.log.Info().Msg("stopping: finishing in-flight writes")
		case <-gctx.Done():
			return nil
		case <-caughtUp:
			j.log.Info().Msg("caught up with the source")
			if j.o.Cutover != nil {
				if err := j.cutover(gctx, streams); err != nil {
					return err
				}
			}
			j.caught.Store(true)
		}
		stop()
		return nil
	})
	return j.wait(g)
}

// openStream prepares shard i: where it resumes from, its spool, its reader
// and its applier.
func (j *job) openStream(ctx context.Context, i int, sh *source.Shard, tgt target.Target, cluster, found bool) (*stream, error) {
	c := j.c
	d, err := sh.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("source %w", err)
	}
	if cluster {
		if err := j.checkSourceDBs(ctx, d); err != nil {
			return nil, err
		}
	}
	s := &stream{j: j, i: i, sh: sh, live: make(chan struct{}), sweep: found || j.rewound}
	s.rdbSize.Store(-1)
	s.expectKeys.Store(sourceKeys(ctx, d))
	s.app = j.newApplier(i, tgt)
	if found {
		id, id2, _, err := source.ReplIDs(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("source %w", err)
		}
		s.app.SetHistory([2]string{id, id2})
		if pos, ok := tgt.ResumeFor(i, id, id2); ok {
			s.startAt = reader.Start{ReplID: pos.ReplID, Offset: pos.Offset}
			s.app.Resume(pos)
			s.setProcessed(pos.Offset)
			s.app.Log().Info().Str("replid", pos.ReplID).Int64("offset", pos.Offset).Msg("resuming from the position recorded on the target")
		} else {
			s.app.Log().Info().Msg("the target holds no resumable position of this shard; a full resync follows")
		}
	}
	s.app.SetSink(tgt.NewSink(s.app))
	// spool_memory and spool_max_disk are the job's: each shard gets its
	// share.
	shards := int64(max(1, j.shards))
	s.sp, err = spool.New(spool.Options{Dir: filepath.Join(c.JobDir(), "spool", fmt.Sprint(i)),
		MemLimit: max(c.SpoolMemory/shards, 1<<20), MaxDisk: c.SpoolMaxDisk / shards})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	resolve := sh.Resolve
	if sh.Fixed {
		resolve = nil
	}
	out := &spoolWriter{sp: s.sp, max: c.SpoolMaxDisk}
	var ps *reader.PSync
	if c.Source.Reader != conf.ReaderScan {
		ps = reader.NewPSync(reader.Config{
			Dial:    d,
			Name:    sh.Name,
			Log:     *s.app.Log(),
			Acked:   s.applied,
			Resolve: resolve,
			Rewind:  s.rewind,
			// A sync keeps trying; a migrate gives up (see retryTimeout).
			RetryTimeout: j.retryTimeout(),
		}, out)
		s.ps = ps
	}
	if c.Source.Reader != conf.ReaderPSync {
		tag := ""
		if sh.Home >= 0 {
			tag = "{" + router.TagForSlot(sh.Home) + "}"
		}
		// With read_from = "replica" the scan reader reads the replica
		// resolve picks, and writes (its probes) and reads the offsets of
		// its barrier on the master (see reader/scanreplica.go).
		var master func(ctx context.Context) (dial.Options, error)
		if c.Source.ReadFrom == conf.ReadFromReplica {
			master = sh.Master
		}
		big := c.Source.ScanBigValue
		if big == 0 {
			big = -1 // every value with one DUMP
		}
		sc := reader.NewScan(reader.ScanConfig{Dial: d, Name: sh.Name, Resolve: resolve, Master: master, KeyTag: tag, Log: *s.app.Log(), RetryTimeout: j.retryTimeout(), MaxBulk: c.MaxBulkLen, BigValue: big}, out)
		s.ps = sc
		if ps != nil {
			s.ps = reader.NewAuto(ps, sc, *s.app.Log())
		}
	}
	s.app.SetAckNow(s.ps.AckNow)
	return s, nil
}

// checkSourceDBs refuses, before anything is written, a source with keys in
// a db that has no place in a cluster target (db 0 only).
func (j *job) checkSourceDBs(ctx context.Context, src dial.Options) error {
	c := ctl.New(src)
	defer c.Close()
	ks, err := target.Keyspace(ctx, c)
	if err != nil {
		return fmt.Errorf("source %w", ctl.Describe(src.Addr, err))
	}
	for db, n := range ks {
		if n == 0 || db == 0 || !j.filter.DB(db) {
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
	var sum Summary
	first := true
	for _, w := range j.writers() {
		sum.Skipped += w.Stats().Skipped
		if p, ok := w.Applied(0); ok && (first || p.Offset < sum.Applied.Offset) {
			sum.Applied, first = p, false
		}
	}
	for _, s := range j.parts() {
		if s.ps != nil {
			st := s.ps.Stats()
			sum.FullSyncs += st.FullSyncs
			sum.PartialSyncs += st.PartialSyncs
			if a := s.applied(); a > 0 && st.Received > a {
				sum.Lag += st.Received - a
			}
		}
		sum.Keys += s.app.Keys.Swap(0)
		sum.Expired += s.app.Expired.Swap(0)
		sum.Empty += s.app.Empty.Swap(0)
		sum.FieldTTLs += s.app.FieldTTLs.Swap(0)
		sum.Functions += s.app.Functions.Swap(0)
		sum.Modules += s.app.Modules.Swap(0)
		sum.Commands += s.app.Commands.Swap(0)
	}
	j.mu.Lock()
	j.sum.Applied, j.sum.Lag = sum.Applied, sum.Lag
	j.sum.CaughtUp = j.caught.Load()
	j.sum.FullSyncs += sum.FullSyncs
	j.sum.PartialSyncs += sum.PartialSyncs
	j.sum.Keys += sum.Keys
	j.sum.Expired += sum.Expired
	j.sum.Empty += sum.Empty
	j.sum.FieldTTLs += sum.FieldTTLs
	j.sum.Functions += sum.Functions
	j.sum.Modules += sum.Modules
	j.sum.Commands += sum.Commands
	j.sum.Skipped += sum.Skipped
	j.mu.Unlock()
	return err
}

// spoolWriter is where the reader writes: a spool past its disk limit is a
// failure the job reports, never silent loss.
type spoolWriter struct {
	sp  *spool.Spool
	max int64
}

// Buffer lends the reader room in the spool to read into (spool.Buffer).
func (s *spoolWriter) Buffer(n int) []byte { return s.sp.Buffer(n) }

func (s *spoolWriter) Write(p []byte) (int, error) {
	n, err := s.sp.Write(p)
	if errors.Is(err, spool.ErrFull) {
		return n, fmt.Errorf("the spool reached spool_max_disk (%d bytes): the target cannot keep up with the source", s.max)
	}
	return n, err
}
