// What a run shows of itself: its live state, its phase, the summary it
// returns.

package job

import (
	"fmt"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/aof"
	"github.com/ferry-dev/ferry/reader"
	"github.com/ferry-dev/ferry/spool"
	"github.com/ferry-dev/ferry/status"
	"github.com/ferry-dev/ferry/writer"
)

// State is a job's live state.
type State struct {
	Phase     status.Phase
	StartedAt time.Time
	Shards    []ShardState // one per source shard; none for an RDB import
	Writers   []WriterState
	Keys      int64 // snapshot keys written so far
	Expired   int64 // snapshot keys skipped: already expired
	Empty     int64 // snapshot keys skipped: empty collections
	FieldTTLs int64 // hash field TTLs dropped: the target cannot hold them
	Functions int64 // function libraries dropped: the target cannot hold them
	Modules   int64 // module values dropped: the target cannot hold them
	Lease     *LeaseState
	// Restarting: the job is starting again by itself (the target went
	// back, a home slot moved) and has not been able to open its target or
	// source for this long, the last time with RestartError; 0 otherwise.
	Restarting   time.Duration
	RestartError string
	Swept        int64 // stale keys deleted after full resyncs
	Commands     int64 // stream commands applied so far
	RDBSize      int64 // -1: unknown (diskless)
	RDBParsed    int64
}

// ShardState is the state of one source shard's link.
type ShardState struct {
	Name, Addr    string
	Reader        reader.Stats
	Spool         spool.Stats
	AppliedOffset int64
	LagBytes      int64
	LagSeconds    float64
	ExpectKeys    int64 // the source's key count when the attempt began; -1 unknown
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
	Functions    int64 // function libraries (and FUNCTION commands) dropped (on_unsupported = drop)
	Modules      int64 // module values dropped (on_unsupported = drop)
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

func (j *job) setPhase(p status.Phase) { j.phase.Store(&p) }

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
func (j *job) Phase() status.Phase {
	var p status.Phase
	if v := j.phase.Load(); v != nil {
		p = *v
	}
	if p != status.PhaseRunning {
		return p
	}
	rank := map[status.Phase]int{status.PhaseConnecting: 0, status.PhaseHandshake: 1, status.PhaseWaitingBGSave: 2,
		status.PhaseRDB: 3, status.PhaseScan: 3, status.PhaseImport: 3, status.PhaseSweeping: 4, status.PhaseStreaming: 5}
	streams := j.parts()
	if len(streams) == 0 {
		// Between the target's handshake and the first stream: nothing is
		// streaming yet, whatever the ranks below would say.
		return status.PhaseConnecting
	}
	best := status.PhaseStreaming
	for _, s := range streams {
		sp := s.Phase()
		if sp == "" {
			sp = status.PhaseConnecting
		}
		if s.ps != nil {
			// The readers' phases are the same words (reader does not
			// import status).
			if rp := status.Phase(s.ps.Stats().Phase); rank[rp] < rank[sp] {
				sp = rp
			}
		}
		if sp != "" && rank[sp] < rank[best] {
			best = sp
		}
	}
	return best
}

// state is the job's live state; safe for concurrent use.
func (j *job) state() State {
	st := State{Phase: j.Phase(), StartedAt: j.start, RDBSize: -1, Lease: j.leaseState()}
	j.mu.Lock()
	st.Keys, st.Commands, st.Expired, st.Swept = j.sum.Keys, j.sum.Commands, j.sum.Expired, j.sum.Swept
	st.Empty, st.FieldTTLs, st.Functions, st.Modules = j.sum.Empty, j.sum.FieldTTLs, j.sum.Functions, j.sum.Modules
	streams := j.streams
	if d := j.down; !d.since.IsZero() {
		st.Restarting, st.RestartError = time.Since(d.since), d.err
	}
	j.mu.Unlock()
	sizeKnown := true
	var size int64
	for _, s := range streams {
		st.Keys += s.app.Keys.Load()
		st.Commands += s.app.Commands.Load()
		st.Expired += s.app.Expired.Load()
		st.Empty += s.app.Empty.Load()
		st.FieldTTLs += s.app.FieldTTLs.Load()
		st.Functions += s.app.Functions.Load()
		st.Modules += s.app.Modules.Load()
		if rs := s.rdbSize.Load(); rs >= 0 {
			size += rs
		} else {
			sizeKnown = false
		}
		st.RDBParsed += s.rdbOff.Load()
		if s.ps == nil {
			continue
		}
		sh := ShardState{Name: s.sh.Name, Reader: s.ps.Stats(), ExpectKeys: s.expectKeys.Load()}
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
