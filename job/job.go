// Package job runs one ferry job: a source (a live master read with PSYNC, or
// an RDB file) applied to a target through the spool, the applier and the
// writers, until it is stopped (sync), caught up (migrate) or done (import).
package job

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/apply"
	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/filter"
	"github.com/ferry-dev/ferry/lease"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/target"
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
	// OnStreams, if set, is called at the start of each attempt with the
	// number of streams it reads at once: one per source shard, 1 for a
	// file. The process sizes its scheduler with it (cmd/ferry: procs).
	OnStreams func(n int)
	// OnSnapshot, if set, is called by a stream when it starts reading a
	// snapshot (true: a full sync, an RDB file, an AOF's preamble) and when
	// it stops (false), however it ended; the streams of a job call it
	// concurrently. The process schedules itself by it (cmd/ferry:
	// cpu_scheduling auto).
	OnSnapshot func(applying bool)

	// Knobs for this package's tests only, out of reach of other packages:
	// throttle delays writer batches on top of the configured rate limits
	// (a slow target); ioTimeout overrides the writers' reply deadline;
	// drainTimeout bounds the final flush of a complete run (default 60 s).
	throttle     func(ctx context.Context, ops, bytes int) error
	ioTimeout    time.Duration
	drainTimeout time.Duration
}

type job struct {
	o   Options
	c   conf.Job
	log zerolog.Logger

	start   time.Time
	rewound bool // a writer reported the target went back: resume from its marker
	filter  *filter.Filter
	moves   *apply.Moves // cluster source: see moves.go
	cmds    commandInfo  // the command table (learned from the source), the target's commands: commands.go
	// holdsModules: the target has modules loaded, or cannot say (set per
	// attempt, with cmds).
	holdsModules  bool
	warnedMissing bool // warnMissingWrites said its line
	owner         lease.Owner
	lease         leases // see lease.go
	throttle      func(ctx context.Context, ops, bytes int) error
	stopping      atomic.Bool
	// hard is cancelled StopTimeout after the caller's context (or when
	// Run returns): the machinery runs under it, so that a stop flushes
	// what it can but never waits longer.
	hard        context.Context
	stopExpired atomic.Bool
	caught      atomic.Bool   // migrate: every stream caught up
	shards      int           // source shards of the current attempt
	seq         atomic.Uint64 // unit numbers (see apply.Config.Seq)

	mu      sync.Mutex
	sum     Summary
	tgt     target.Target
	streams []*stream
	down    restartDown // a restarted attempt cannot open its peers: see reopen
	phase   atomic.Pointer[status.Phase]
}

// Run runs the job until ctx is cancelled (sync), the target caught up
// (migrate), or the RDB file is imported.
func Run(ctx context.Context, o Options) (Summary, error) {
	j := &job{o: o, c: o.Conf, log: o.Log, start: time.Now()}
	j.owner = lease.Self(j.start)
	if !j.c.Shards.All() {
		// Each process of a split sync is a job of its own on the target:
		// its markers, its lease, its data dir.
		j.c.Name = fmt.Sprintf("%s.s%dof%d", j.c.Name, j.c.Shards.I, j.c.Shards.N)
	}
	if j.c.LeaseTTL < time.Second {
		j.c.LeaseTTL = 30 * time.Second
	}
	defer j.releaseLeases()
	if j.o.drainTimeout <= 0 {
		j.o.drainTimeout = 60 * time.Second
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
	case lim != nil && o.throttle != nil:
		extra := o.throttle
		j.throttle = func(ctx context.Context, ops, bytes int) error {
			if err := lim.Wait(ctx, ops, bytes); err != nil {
				return err
			}
			return extra(ctx, ops, bytes)
		}
	case lim != nil:
		j.throttle = lim.Wait
	default:
		j.throttle = o.throttle
	}
	warnInsecure(j.log, "source", o.Conf.Source)
	warnInsecure(j.log, "target", o.Conf.Target)
	j.setPhase(status.PhaseConnecting)
	if o.Observe != nil {
		o.Observe(j.state)
	}
	restarted := false // an attempt ended in a way that starts another
	re := reopen{log: j.log, timeout: j.retryTimeout()}
	for {
		err := j.attempt(ctx)
		// Two ends of an attempt start another, from the target's markers;
		// an attempt that starts one again and cannot open its peers is
		// tried again (reopen).
		var (
			rw *writer.RewoundError
			hm *target.HomeMovedError
			oe *openError
		)
		if !errors.As(err, &oe) {
			re.opened()
		}
		again := ctx.Err() == nil
		wait := time.Second
		switch {
		case again && errors.As(err, &rw):
			j.log.Warn().Err(err).Msg("the target lost writes it had acknowledged; resuming from the positions it holds")
			j.rewound = true
		case again && errors.As(err, &hm):
			j.log.Warn().Err(err).Msg("a target master's home slot moved; starting again from the target's markers, with its lease and stream markers in a slot it serves now")
			j.forgetHomes()
		case again && restarted:
			failed := err
			wait, again, err = re.failed(err, time.Now())
			if again {
				j.setPhase(status.PhaseConnecting)
				j.setDown(restartDown{since: re.since, err: failed.Error()})
			}
		case restarted && oe != nil:
			// Stopped while opening an attempt that starts the job
			// again: as below.
			err = nil
		default:
			again = false
		}
		if again {
			restarted = true
			select {
			case <-ctx.Done():
				// Stopped between attempts: the last one's writers are
				// closed, nothing is held, and the target's markers are
				// the resume point — a clean stop.
				err = nil
			case <-time.After(wait):
				continue
			}
		}
		if j.stopExpired.Load() {
			err = j.unflushed()
		}
		if err == nil {
			j.setPhase(status.PhaseDone)
		} else {
			j.setPhase(status.PhaseFailed)
		}
		j.mu.Lock()
		s := j.sum
		j.mu.Unlock()
		s.Elapsed = time.Since(j.start)
		return s, err
	}
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
	return t.Writers()
}

// warnInsecure says, once per endpoint, that its TLS certificate is not
// checked: the setting is easy to leave on after a test.
func warnInsecure(log zerolog.Logger, role string, e conf.Endpoint) {
	if e.IsSet() && e.TLSOn() && e.TLS.InsecureSkipVerify {
		log.Warn().Str(role, e.Redacted()).Msgf("%s: insecure_skip_verify is on: the server's TLS certificate is not checked, anyone on the network path can pose as it and read the data and password", role)
	}
}

func errorPolicy(p conf.OnError) writer.ErrorPolicy {
	if p == conf.OnErrorSkip {
		return writer.Skip
	}
	return writer.Stop
}

func (j *job) addRDB(n int64) {
	j.mu.Lock()
	j.sum.RDBBytes += n
	j.mu.Unlock()
}

// idle is called when the stream's consumer is about to wait for the
// source: what is batched goes out now, so that latency stays low under a
// light load. Not in a snapshot, whose batches fill up anyway and whose end
// flushes them: a consumer that keeps up with a source short of CPU caught
// up every few dozen keys, each time a batch, a flight and (on a cluster
// master) a transaction per slot.
func (s *stream) idle(ctx context.Context) {
	// Nothing is waiting: everything received is applied.
	s.publish()
	s.app.Moves().Applied(s.i, time.Now())
	if !s.app.InTx() && !s.inSnapshot {
		if err := s.app.Flush(ctx); err != nil {
			s.app.Log().Debug().Err(err).Msg("idle flush")
		}
	}
}
