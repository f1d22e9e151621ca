package main

// Status and progress for the commands that run jobs: one status server per
// process (sync, migrate, run), one registered Source per job, and the
// snapshot progress bar on a terminal.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/job"
	"github.com/ferry-dev/ferry/status"
)

// statusServer binds the status address and runs the server until the
// returned stop function is called (stop waits for it to shut down).
// addr "" disables it. A busy address is a configuration error when the
// user chose it, and only a warning when it is the default.
func statusServer(addr string, pprof bool, log zerolog.Logger) (*status.Server, func(), error) {
	explicit := addr != conf.Default().StatusAddr
	srv, err := status.New(addr, explicit, log, status.WithPprof(pprof))
	if err != nil {
		return nil, nil, usageError{fmt.Errorf("config: %v (choose another status_addr, or \"off\" to disable it)", err)}
	}
	srv.SetBuildInfo(buildInfo())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Run(ctx); err != nil {
			log.Warn().Err(err).Msg("status server stopped")
		}
	}()
	if a := srv.Addr(); a != "" {
		log.Info().Msgf("status: http://%s/status", a)
	}
	return srv, func() { cancel(); <-done }, nil
}

// statusMode is the mode a job shows in its status: import, migrate, sync
// or verify.
func statusMode(j conf.Job) string {
	if j.Import() && j.Mode != conf.ModeVerify {
		return "import"
	}
	return string(j.Mode)
}

// jobStatus is the status.Source of one job: the job's live state while it
// runs (job.Options.Observe), then its last state frozen with phase done or
// failed.
type jobStatus struct {
	name, mode string
	rdbPath    string
	shards     string // "I/N" of a split sync, else ""

	mu      sync.Mutex
	state   func() job.State // nil until the job calls Observe
	phase   status.Phase     // overrides the job's phase when set
	lastErr string
	started time.Time
	final   *status.Job // set by finish: the state no longer changes
	rates   status.Rates
}

func newJobStatus(j conf.Job, phase status.Phase) *jobStatus {
	js := &jobStatus{name: j.Name, mode: statusMode(j), rdbPath: j.RDB, phase: phase}
	if !j.Shards.All() {
		js.shards = j.Shards.String()
	}
	return js
}

// observe is job.Options.Observe.
func (s *jobStatus) observe(state func() job.State) {
	s.mu.Lock()
	s.state, s.phase = state, ""
	s.rates.Start(time.Now())
	s.mu.Unlock()
}

// setPhase sets the phase shown until the job reports its own (observe
// clears it) or until finish.
func (s *jobStatus) setPhase(p status.Phase) {
	s.mu.Lock()
	s.phase = p
	if s.started.IsZero() && p != status.PhaseQueued {
		s.started = time.Now()
	}
	s.mu.Unlock()
}

// source is the status.Source registered for the job.
func (s *jobStatus) source() status.Job {
	s.mu.Lock()
	if s.final != nil {
		j := *s.final
		s.mu.Unlock()
		return j
	}
	state, phase, lastErr, started := s.state, s.phase, s.lastErr, s.started
	s.mu.Unlock()
	var j status.Job
	if state != nil {
		j = s.fromState(state())
	} else {
		j = status.Job{Name: s.name, Mode: s.mode, StartedAt: started}
	}
	if phase != "" {
		j.Phase = phase
	}
	if lastErr != "" {
		j.LastError = lastErr
	}
	j.ShardSet = s.shards
	j.OpsPerSecond, j.CommandsPerSecond = s.rate(j)
	return j
}

// fromState maps a job.State; an RDB import, which has no source shard,
// gets one for the file so that its progress shows.
func (s *jobStatus) fromState(st job.State) status.Job {
	j := st.Status(s.name, s.mode)
	if len(j.Shards) == 0 && s.rdbPath != "" && (st.RDBSize > 0 || st.RDBParsed > 0) {
		j.Shards = []status.Shard{{
			Name:             "rdb-file",
			Addr:             s.rdbPath,
			Phase:            j.Phase,
			RDBBytesTotal:    st.RDBSize,
			RDBBytesReceived: st.RDBParsed,
			RDBBytesApplied:  st.RDBParsed,
		}}
	}
	return j
}

// rate is j's status.Rates, each measured over at least a second.
func (s *jobStatus) rate(j status.Job) (ops, commands float64) {
	var n int64
	for _, w := range j.Writers {
		n += w.Ops
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rates.Sample(time.Now(), n, j.CommandsApplied, time.Second)
}

// finish freezes the status: the job's last state, with phase done,
// failed or cancelled and the error if any. It may be called again to
// change the phase and the error.
func (s *jobStatus) finish(phase status.Phase, err error) {
	j := s.source()
	j.Phase, j.OpsPerSecond, j.CommandsPerSecond = phase, 0, 0
	if err != nil {
		j.LastError = oneLine(err.Error())
	}
	s.mu.Lock()
	s.final = &j
	s.mu.Unlock()
}

// console is stderr shared by the log and the progress bar: a log line
// first wipes the bar (the next update draws it again below the line), and
// writes never interleave. It also makes the log safe for concurrent use.
type console struct {
	mu  sync.Mutex
	w   io.Writer
	bar bool // a bar is on screen, its line not ended
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bar {
		io.WriteString(c.w, "\r\x1b[K")
		c.bar = false
	}
	return c.w.Write(p)
}

// barShown reports whether a bar is on screen, not wiped by a log line.
func (c *console) barShown() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bar
}

// barWriter is where the progress bar draws.
func (c *console) barWriter() io.Writer { return barWriter{c} }

type barWriter struct{ c *console }

func (b barWriter) Write(p []byte) (int, error) {
	b.c.mu.Lock()
	defer b.c.mu.Unlock()
	n, err := b.c.w.Write(p)
	b.c.bar = len(p) > 0 && p[len(p)-1] != '\n'
	return n, err
}

// progressEvery is how often the progress bar is fed.
const progressEvery = 200 * time.Millisecond

// showProgress draws the snapshot progress bar on con from the job's state
// while the job is in the rdb or import phase, until ctx is done. A bar
// still on screen when the snapshot ends is finished with its last state
// and a newline; one that a log line wiped meanwhile is not drawn again.
func showProgress(ctx context.Context, js *jobStatus, con *console) {
	b := newBarShow(js, con)
	t := time.NewTicker(progressEvery)
	defer t.Stop()
	for {
		b.step()
		select {
		case <-ctx.Done():
			b.stop()
			return
		case <-t.C:
		}
	}
}

// barShow is the bar's state between two looks at the job.
type barShow struct {
	js  *jobStatus
	con *console
	p   *status.Progress
	on  bool // the job was in a snapshot at the last look
}

func newBarShow(js *jobStatus, con *console) *barShow {
	return &barShow{js: js, con: con, p: status.NewProgress(con.barWriter(), true)}
}

// step looks at the job once: draws the bar during a snapshot, ends it
// when the snapshot is over.
func (b *barShow) step() {
	b.js.mu.Lock()
	state, final := b.js.state, b.js.final
	b.js.mu.Unlock()
	if state == nil || final != nil {
		return
	}
	st := state()
	if st.Phase == status.PhaseRDB || st.Phase == status.PhaseImport || st.Phase == status.PhaseScan {
		b.p.Update(b.js.fromState(st))
		b.on = true
	} else if b.on {
		b.end(nil)
	}
}

// stop ends a bar still on screen with the job's last state.
func (b *barShow) stop() {
	if !b.on {
		return
	}
	b.js.mu.Lock()
	state := b.js.state
	b.js.mu.Unlock()
	b.end(state)
}

func (b *barShow) end(state func() job.State) {
	if b.con.barShown() {
		if state != nil {
			b.p.Update(b.js.fromState(state()))
		}
		b.p.Done()
	}
	b.p = status.NewProgress(b.con.barWriter(), true)
	b.on = false
}

// errInterrupted is a migrate stopped by a signal (or by fail_fast) before
// the target caught up.
var errInterrupted = errors.New("interrupted before the target caught up with the source")
