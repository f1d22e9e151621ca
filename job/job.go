// Package job runs one ferry job: a source (a live master read with PSYNC, or
// an RDB file) applied to a target through the spool, the applier and the
// writers, until it is stopped (sync), caught up (migrate) or done (import).
package job

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/aof"
	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/filter"
	"github.com/ferry-dev/ferry/reader"
	"github.com/ferry-dev/ferry/router"
	"github.com/ferry-dev/ferry/spool"
	"github.com/ferry-dev/ferry/throttle"
	"github.com/ferry-dev/ferry/writer"
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
	// DrainTimeout bounds the final flush of a complete run (default 60 s).
	DrainTimeout time.Duration
	// StopTimeout bounds a stop once ctx is cancelled (default 30 s): past
	// it everything is cancelled, whatever the peers do, and Run returns
	// an error saying what was not flushed.
	StopTimeout time.Duration
	// Observe, if set, is called once at the start with a function that
	// returns the job's live state (for status pages, metrics and tests).
	Observe func(state func() State)
	// Cutover, with Migrate, ends the migration with a cutover (see
	// Cutover).
	Cutover *Cutover
}

// State is a job's live state.
type State struct {
	Phase     string
	StartedAt time.Time
	Shards    []ShardState // one per source shard; none for an RDB import
	Writers   []WriterState
	Keys      int64 // snapshot keys written so far
	Expired   int64 // snapshot keys skipped: already expired
	Empty     int64 // snapshot keys skipped: empty collections
	FieldTTLs int64 // hash field TTLs dropped: the target cannot hold them
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
	Applied    writer.Position // of the first stream
}

// Summary is what a run did.
type Summary struct {
	Keys         int64 // snapshot keys written
	Expired      int64 // snapshot keys skipped because already expired
	Empty        int64 // snapshot keys skipped because empty collections (Redis skips them too)
	FieldTTLs    int64 // hash field TTLs dropped (on_unsupported = drop)
	Commands     int64 // stream commands applied
	RDBBytes     int64
	Elapsed      time.Duration
	FullSyncs    int64
	PartialSyncs int64
	Swept        int64           // stale keys deleted after a full resync
	Applied      writer.Position // the first stream's position on the target
	Lag          int64           // source bytes received and not applied at the end (all shards)
	Shards       int
	// CaughtUp: a migrate reached the source's offsets (it was not
	// interrupted before).
	CaughtUp bool
	// AOFTruncated: an AOF import whose last file was cut off (applied up
	// to there, like redis-server with aof-load-truncated yes).
	AOFTruncated *aof.Truncation
	// Skipped: commands the target refused and that were skipped
	// (on_error = skip); the target does not hold them.
	Skipped int64
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
	filter   *filter.Filter
	moves    *moves      // cluster source: see moves.go
	cmds     commandInfo // the command table (learned from the source), the target's commands: commands.go
	throttle func(ctx context.Context, ops, bytes int) error
	stopping atomic.Bool
	// hard is cancelled StopTimeout after the caller's context (or when
	// Run returns): the machinery runs under it, so that a stop flushes
	// what it can but never waits longer.
	hard        context.Context
	stopExpired atomic.Bool
	caught      atomic.Bool   // migrate: every stream caught up
	shards      int           // source shards of the current attempt
	seq         atomic.Uint64 // unit numbers (see applier.seq)

	mu      sync.Mutex
	sum     Summary
	tgt     target
	streams []*stream
	phase   atomic.Pointer[string]
}

// Run runs the job until ctx is cancelled (sync), the target caught up
// (migrate), or the RDB file is imported.
func Run(ctx context.Context, o Options) (Summary, error) {
	j := &job{o: o, c: o.Conf, log: o.Log, start: time.Now()}
	if j.o.DrainTimeout <= 0 {
		j.o.DrainTimeout = 60 * time.Second
	}
	if j.o.StopTimeout <= 0 {
		j.o.StopTimeout = 30 * time.Second
	}
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	j.hard = hard
	go func() {
		select {
		case <-hard.Done():
			return
		case <-ctx.Done():
		}
		t := time.NewTimer(j.o.StopTimeout)
		defer t.Stop()
		select {
		case <-hard.Done():
		case <-t.C:
			j.stopExpired.Store(true)
			cancelHard()
		}
	}()
	var err error
	if j.filter, err = filter.New(o.Conf.Filter); err != nil {
		return Summary{}, err
	}
	// One budget for all writers of the job.
	lim := throttle.New(o.Conf.MaxOpsPerSecond, o.Conf.MaxBytesPerSecond)
	switch {
	case lim != nil && o.Throttle != nil:
		extra := o.Throttle
		j.throttle = func(ctx context.Context, ops, bytes int) error {
			if err := lim.Wait(ctx, ops, bytes); err != nil {
				return err
			}
			return extra(ctx, ops, bytes)
		}
	case lim != nil:
		j.throttle = lim.Wait
	default:
		j.throttle = o.Throttle
	}
	warnInsecure(j.log, "source", o.Conf.Source)
	warnInsecure(j.log, "target", o.Conf.Target)
	j.setPhase("connecting")
	if o.Observe != nil {
		o.Observe(j.state)
	}
	for {
		err := j.attempt(ctx)
		var rw *writer.RewoundError
		if errors.As(err, &rw) && ctx.Err() == nil {
			j.log.Warn().Err(err).Msg("the target lost writes it had acknowledged; resuming from the positions it holds")
			j.rewound = true
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		if j.stopExpired.Load() {
			err = j.unflushed()
		}
		if err == nil {
			j.setPhase("done")
		} else {
			j.setPhase("failed")
		}
		j.mu.Lock()
		s := j.sum
		j.mu.Unlock()
		s.Elapsed = time.Since(j.start)
		return s, err
	}
}

func (j *job) setPhase(p string) { j.phase.Store(&p) }

// unflushed is the error of a stop that ran out of stop_timeout: what the
// writers still held, and what happens to it.
func (j *job) unflushed() error {
	var parts []string
	for _, w := range j.writers() {
		st := w.Stats()
		if n := st.Queued + st.Inflight; n > 0 || !st.Connected {
			p := fmt.Sprintf("%d bytes of writes not acknowledged by target %s", n, w.Addr())
			if st.Down > 0 {
				p += fmt.Sprintf(" (unreachable for %s: %s)", st.Down.Round(time.Second), st.LastError)
			}
			parts = append(parts, p)
		}
	}
	what := "the stop did not finish"
	if len(parts) > 0 {
		what = strings.Join(parts, "; ")
	}
	rerun := "the next start resumes from them"
	if j.c.RDB != "" {
		rerun = "a rerun imports the file again"
	}
	return fmt.Errorf("stopped after stop_timeout %s: %s; the markers on the target record what was applied, %s", j.o.StopTimeout, what, rerun)
}

// Phase is the job's phase: the phase of its least advanced stream while it
// runs.
func (j *job) Phase() string {
	p := ""
	if v := j.phase.Load(); v != nil {
		p = *v
	}
	if p != "running" {
		return p
	}
	rank := map[string]int{"connecting": 0, "handshake": 1, "waiting-bgsave": 2, "rdb": 3, "scan": 3, "import": 3, "sweeping": 4, "streaming": 5}
	streams := j.parts()
	if len(streams) == 0 {
		// Between the target's handshake and the first stream: nothing is
		// streaming yet, whatever the ranks below would say.
		return "connecting"
	}
	best := "streaming"
	for _, s := range streams {
		sp := s.Phase()
		if sp == "" {
			sp = "connecting"
		}
		if s.ps != nil {
			if rp := s.ps.Stats().Phase; rank[rp] < rank[sp] {
				sp = rp
			}
		}
		if sp != "" && rank[sp] < rank[best] {
			best = sp
		}
	}
	return best
}

func (j *job) parts() []*stream {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.streams
}

func (j *job) writers() []*writer.Writer {
	j.mu.Lock()
	t := j.tgt
	j.mu.Unlock()
	if t == nil {
		return nil
	}
	return t.writers()
}

// state is the job's live state; safe for concurrent use.
func (j *job) state() State {
	st := State{Phase: j.Phase(), StartedAt: j.start, RDBSize: -1}
	j.mu.Lock()
	st.Keys, st.Commands, st.Expired, st.Swept = j.sum.Keys, j.sum.Commands, j.sum.Expired, j.sum.Swept
	st.Empty, st.FieldTTLs = j.sum.Empty, j.sum.FieldTTLs
	streams := j.streams
	j.mu.Unlock()
	sizeKnown := true
	var size int64
	for _, s := range streams {
		st.Keys += s.app.keys.Load()
		st.Commands += s.app.commands.Load()
		st.Expired += s.app.expired.Load()
		st.Empty += s.app.empty.Load()
		st.FieldTTLs += s.app.fieldTTLs.Load()
		if rs := s.rdbSize.Load(); rs >= 0 {
			size += rs
		} else {
			sizeKnown = false
		}
		st.RDBParsed += s.rdbOff.Load()
		if s.ps == nil {
			continue
		}
		sh := ShardState{Name: s.sh.name, Reader: s.ps.Stats()}
		sh.Addr = sh.Reader.Addr
		if s.sp != nil {
			sh.Spool = s.sp.Stats()
		}
		sh.AppliedOffset = s.applied()
		if sh.AppliedOffset > 0 {
			sh.LagBytes = max(sh.Reader.Received-sh.AppliedOffset, 0)
			sh.LagSeconds = s.lag.seconds(sh.AppliedOffset)
		}
		st.Shards = append(st.Shards, sh)
	}
	if sizeKnown && len(streams) > 0 {
		st.RDBSize = size
	}
	for i, w := range j.writers() {
		ws := WriterState{Name: fmt.Sprintf("ferry-writer-%d", i), Addr: w.Addr(), Stats: w.Stats()}
		ws.Applied, _ = w.Applied(0)
		st.Writers = append(st.Writers, ws)
	}
	return st
}

// warnInsecure says, once per endpoint, that its TLS certificate is not
// checked: the setting is easy to leave on after a test.
func warnInsecure(log zerolog.Logger, role string, e conf.Endpoint) {
	if e.IsSet() && e.TLSOn() && e.TLS.InsecureSkipVerify {
		log.Warn().Str(role, e.Redacted()).Msgf("%s: insecure_skip_verify is on: the server's TLS certificate is not checked, anyone on the network path can pose as it and read the data and password", role)
	}
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
	return j.openCluster(ctx)
}

// newApplier is the applier of stream i.
func (j *job) newApplier(i int, tgt target) *applier {
	c := j.c
	app := &applier{
		job:    j,
		stream: i,
		log:    j.log,
		dbMap:  c.DBMap,
		filter: j.filter,
		moves:  j.moves,
		table:  j.cmds.table,
		known:  j.cmds.known,
		waitApplied: func(ctx context.Context, stream int, seq uint64) error {
			return j.waitApplied(ctx, stream, seq)
		},
		jobName: c.Name,
		skipErr: c.OnError == "skip",
		restore: c.Restore,
		fenced:  c.Fence != "off",
		seq:     &j.seq,
	}
	if i > 0 || !j.c.Import() {
		app.log = j.log.With().Str("conn", fmt.Sprintf("ferry-reader-%d", i)).Logger()
	}
	app.tgtRDB, app.maxBulk = 1<<30, 1<<62
	for _, n := range tgt.nodes() {
		app.tgtRDB, app.maxBulk = min(app.tgtRDB, n.rdbVer), min(app.maxBulk, n.maxBulk)
	}
	app.noFieldTTL = !j.targetHoldsFieldTTLs(tgt)
	app.dropFieldTTL = c.OnUnsupported == "drop"
	return app
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
	found := tgt.found()
	if s := tgt.maxSeq(); s > j.seq.Load() {
		j.seq.Store(s)
	}
	j.cmds = commandInfo{table: builtinCommands(), known: j.targetCommands(ctx, tgt)}
	var src *source
	if c.RDB == "" && c.AOF == "" {
		if src, err = j.openSource(ctx); err != nil {
			return err
		}
		j.cmds.table = j.sourceCommands(ctx, src)
	}
	// Before anything is written (or flushed) on the target.
	if err := j.checkCapabilities(ctx, tgt, src); err != nil {
		return err
	}
	if !found && !j.rewound {
		if err := j.checkEmpty(ctx, tgt.nodes()); err != nil {
			return err
		}
	}
	j.mu.Lock()
	j.tgt, j.streams = tgt, nil
	j.mu.Unlock()

	runCtx, cancelRun := context.WithCancel(j.hard)
	defer cancelRun()
	g, gctx := errgroup.WithContext(runCtx)
	tgt.start(gctx, g)
	g.Go(func() error { return j.progress(gctx) })
	j.setPhase("running")

	if c.RDB != "" || c.AOF != "" {
		s := &stream{j: j, i: 0, live: make(chan struct{}), sweep: found || j.rewound}
		s.rdbSize.Store(-1)
		s.app = j.newApplier(0, tgt)
		s.app.out = tgt.newSink(s.app)
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

	if src.cluster {
		slots := make([][][2]int, len(src.shards))
		for i, sh := range src.shards {
			slots[i] = sh.slots
		}
		j.moves = newMoves(slots)
	}
	var streams []*stream
	j.shards = len(src.shards)
	for i, sh := range src.shards {
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
func (j *job) openStream(ctx context.Context, i int, sh *shard, tgt target, cluster, found bool) (*stream, error) {
	c := j.c
	d, err := sh.resolve(ctx)
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
	s.app = j.newApplier(i, tgt)
	if found {
		id, id2, _, err := replIDs(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("source %w", err)
		}
		s.app.replIDs = [2]string{id, id2}
		if pos, ok := tgt.resumeFor(i, id, id2); ok {
			s.startAt = reader.Start{ReplID: pos.ReplID, Offset: pos.Offset}
			s.app.replid, s.app.offset, s.app.db = pos.ReplID, pos.Offset, pos.DB
			s.app.setDataEnd(pos.Offset)
			s.setProcessed(pos.Offset)
			s.app.resumed = true
			s.app.log.Info().Str("replid", pos.ReplID).Int64("offset", pos.Offset).Msg("resuming from the position recorded on the target")
		} else {
			s.app.log.Info().Msg("the target holds no resumable position of this shard; a full resync follows")
		}
	}
	s.app.out = tgt.newSink(s.app)
	// spool_memory and spool_max_disk are the job's: each shard gets its
	// share.
	shards := int64(max(1, j.shards))
	s.sp, err = spool.New(spool.Options{Dir: filepath.Join(c.JobDir(), "spool", fmt.Sprint(i)),
		MemLimit: max(c.SpoolMemory/shards, 1<<20), MaxDisk: c.SpoolMaxDisk / shards})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	resolve := sh.resolve
	if sh.fixed {
		resolve = nil
	}
	out := &spoolWriter{sp: s.sp, max: c.SpoolMaxDisk}
	var ps *reader.PSync
	if c.Source.Reader != "scan" {
		ps = reader.NewPSync(reader.Config{
			Dial:    d,
			Name:    sh.name,
			Log:     s.app.log,
			Acked:   s.applied,
			Resolve: resolve,
			Rewind:  s.rewind,
			// A sync keeps trying; a migrate gives up (see retryTimeout).
			RetryTimeout: j.retryTimeout(),
		}, out)
		s.ps = ps
	}
	if c.Source.Reader != "psync" {
		tag := ""
		if sh.home >= 0 {
			tag = "{" + router.TagForSlot(sh.home) + "}"
		}
		// The scan reader reads masters (read_from = "replica" is for
		// PSYNC): the cutover's barrier must see every write, and the probe
		// writes.
		var master func(ctx context.Context) (dial.Options, error)
		if !sh.fixed {
			master = sh.master
		}
		sc := reader.NewScan(reader.ScanConfig{Dial: d, Name: sh.name, Resolve: master, KeyTag: tag, Log: s.app.log, RetryTimeout: j.retryTimeout()}, out)
		s.ps = sc
		if ps != nil {
			s.ps = reader.NewAuto(ps, sc, s.app.log)
		}
	}
	s.app.ackNow = s.ps.AckNow
	return s, nil
}

// waitApplied waits until stream's units up to seq are submitted (the
// stream is asked to flush) and every writer acknowledged them.
func (j *job) waitApplied(ctx context.Context, i int, seq uint64) error {
	var s *stream
	for _, st := range j.parts() {
		if st.i == i {
			s = st
		}
	}
	if s == nil {
		return nil
	}
	for {
		flushed := s.app.flushNote.wait()
		if s.app.flushed.Load() >= seq {
			break
		}
		s.app.flushReq.Store(true)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-flushed:
		}
	}
	for {
		// Wait on the first writer that still holds units up to seq: only
		// its acknowledgement can move the answer.
		var behind <-chan struct{}
		for _, w := range j.writers() {
			changed := w.Changed()
			if err := w.Err(); err != nil {
				return err
			}
			if p, ok := w.Applied(i); (!ok || p.Seq < seq) && w.Pending(i) {
				behind = changed
				break
			}
		}
		if behind == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-behind:
		}
	}
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
		sum.Keys += s.app.keys.Swap(0)
		sum.Expired += s.app.expired.Swap(0)
		sum.Empty += s.app.empty.Swap(0)
		sum.FieldTTLs += s.app.fieldTTLs.Swap(0)
		sum.Commands += s.app.commands.Swap(0)
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
	j.sum.Commands += sum.Commands
	j.sum.Skipped += sum.Skipped
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

func (j *job) addRDB(n int64) {
	j.mu.Lock()
	j.sum.RDBBytes += n
	j.mu.Unlock()
}

// sweep deletes the target's keys that the snapshot just applied does not
// have, on every master: for a shard of a cluster source, only keys of the
// shard's slots (the other shards' keys are theirs).
func (j *job) sweep(ctx context.Context, keep *keySet, sh *shard) error {
	// A target key is the job's to delete only if some source db mapped to
	// its db copies it (a filtered-out or foreign key is left alone), and,
	// for one shard of a cluster source, if the key is in that shard.
	srcDBs := map[int][]int{}
	for db := 0; db < 256; db++ {
		t := db
		if m, ok := j.c.DBMap[db]; ok {
			t = m
		}
		srcDBs[t] = append(srcDBs[t], db)
	}
	owned := func(tdb int, key string) bool {
		if sh != nil && !sh.owns(key) {
			return false
		}
		for _, db := range srcDBs[tdb] {
			if j.filter.Key(db, []byte(key)) {
				return true
			}
		}
		return false
	}
	var deleted int64
	for _, n := range j.tgt.nodes() {
		d, err := n.sweep(ctx, keep, owned)
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
	for _, w := range j.writers() {
		if err := w.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

// finish ends a run. A complete one (an import, a migrate that caught up)
// flushes and acknowledges everything and removes the markers: the target
// then holds exactly the data. A stopped one only waits for what is on the
// wire: the markers record where the target stands, and what was not sent
// yet is read from the source again by the next start.
func (j *job) finish(ctx context.Context, complete bool) error {
	dctx, cancel := context.WithTimeout(ctx, j.o.DrainTimeout)
	defer cancel()
	for _, s := range j.parts() {
		s.app.out.dropUnit()
		if err := s.app.out.flush(ctx); err != nil {
			return err
		}
	}
	var err error
	if complete {
		err = j.drain(dctx)
	} else {
		// A stop applies what ferry holds if that is quick (the usual
		// case), and otherwise (a rate limit, a slow target) leaves it to
		// the next start rather than keep the operator waiting.
		qctx, qcancel := context.WithTimeout(ctx, min(j.o.DrainTimeout, 10*time.Second))
		err = j.drain(qctx)
		qcancel()
		if errors.Is(err, context.DeadlineExceeded) {
			j.log.Warn().Msg("stopping without applying everything received: the rest is read from the source again on the next start")
			for _, w := range j.writers() {
				if err = w.Settle(dctx); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("in-flight writes not acknowledged within %s; the target's markers record what was applied", j.o.DrainTimeout)
		}
		return err
	}
	if complete {
		if err := j.tgt.removeMarkers(ctx); err != nil {
			return fmt.Errorf("remove markers: %w", err)
		}
	}
	return nil
}

// caughtUp closes its channel once every stream's snapshot is live and the
// target has applied every write its shard had at that moment.
func (j *job) caughtUp(ctx context.Context, streams []*stream) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.waitCaughtUp(ctx)
			}()
		}
		wg.Wait()
		if ctx.Err() == nil {
			close(done)
		}
	}()
	return done
}

func (s *stream) waitCaughtUp(ctx context.Context) {
	select {
	case <-s.live:
	case <-ctx.Done():
		return
	}
	var target int64 = -1
	for ctx.Err() == nil {
		if target < 0 {
			if off, ok, err := s.scanBarrier(ctx); ok {
				if err == nil {
					target = off
				}
			} else if off, err := s.sourceOffset(ctx); err == nil {
				target = off
			}
		}
		if target < 0 {
			// The source did not answer: ask again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		applied, changed := s.appliedOrChange()
		if applied >= target {
			return
		}
		wait(ctx, changed)
	}
}

// sourceOffset reads the replication offset of the node the stream reads.
func (s *stream) sourceOffset(ctx context.Context) (int64, error) {
	d, err := s.sh.resolve(ctx)
	if err != nil {
		return 0, err
	}
	ctl := newCtl(d)
	defer ctl.Close()
	return masterOffset(ctx, ctl)
}

// idle is called when the stream's consumer is about to wait for the
// source: what is batched goes out now, so that latency stays low under a
// light load.
func (s *stream) idle(ctx context.Context) {
	// Nothing is waiting: everything received is applied.
	s.publish()
	s.app.moves.applied(s.i, time.Now())
	if !s.app.inTx {
		if err := s.app.flush(ctx); err != nil {
			s.app.log.Debug().Err(err).Msg("idle flush")
		}
	}
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
