// Package writer applies batches of commands to one target Redis server over
// one connection: pipelined (commands are streamed without waiting for their
// replies), acknowledged in order by a reply reader, bounded in flight, kept
// alive when idle, and — after any dropped connection — resumed from what the
// target itself says it has applied, so nothing is lost or applied twice.
//
// The fence: commands go to the target in groups, each a MULTI/EXEC that also
// writes a marker key recording the last unit it holds. On a standalone
// target a group is one or more whole batches of one source shard (the
// batches queued while the previous flight was answered) and there is one
// marker per source shard.
// On a cluster master a transaction must stay in one slot, so a group is the
// commands of one slot and each slot has its own marker (which moves with the
// slot's data when the cluster reshards or fails over). Groups are applied in
// the order they were sent, so after a reconnect the markers tell exactly
// which prefix of what was in flight the target applied. A flight of
// commands that may run twice (a snapshot's keys, Batch.AddIdempotent) goes
// out without transactions; what of it was not answered is sent again.
package writer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/keepalive"
	"github.com/ferry-dev/ferry/resp"
)

// ErrorPolicy says what to do when the target refuses a command.
type ErrorPolicy int

const (
	// Stop ends the job with the error (after the group it was in is
	// recorded as applied: the refused command is not retried).
	Stop ErrorPolicy = iota
	// Skip logs the refused command and goes on.
	Skip
)

// Config configures a Writer.
type Config struct {
	Name      string // CLIENT SETNAME, e.g. ferry-writer-0
	Dial      dial.Options
	MarkerKey string // standalone: the default marker (a batch may name its own)
	MarkerDB  int
	// Slotted: the target is a cluster master. Commands carry slots, groups
	// are per slot and SlotMarker names each slot's marker key. StreamMarker
	// names, per source stream, a key in a slot this master owns: it holds
	// the stream's position for keyless commands and idle position updates
	// (a slot's own marker belongs to the one source shard that writes it).
	Slotted      bool
	SlotMarker   func(slot int) string
	StreamMarker func(stream int) string
	// Fence applies every group in MULTI/EXEC together with its marker, so a
	// replay after a drop never repeats a write. Without it a replay may
	// repeat the writes that were in flight when the link dropped (harmless
	// for SET/DEL/RESTORE, wrong for INCR/LPUSH/APPEND…).
	Fence bool
	// Low, if set, is a stream's global low watermark (every unit of the
	// stream at or below it is applied on every master), recorded in every
	// marker for restarts. The target that owns the writers computes it from
	// what each publishes (Applied); it is asked once per stream a flight.
	Low func(stream int) int64
	// Found are the markers the job found on the target before starting
	// (standalone: one per source stream), so that a target that later
	// loses them is noticed.
	Found map[string]Position

	MaxInflight int64 // bytes sent and not yet acknowledged (default 32 MiB)
	// MaxQueued bounds the bytes submitted and not yet sent (default 8 MiB):
	// a small buffer in front of the connection. A backlog belongs in the
	// spool, which spills to disk, not in memory per target master.
	MaxQueued         int64
	MaxSendOps        int           // commands coalesced into one flight (default 200000; standalone at most standaloneSendOps)
	IOTimeout         time.Duration // no reply for this long while commands are outstanding: the link is dead (default 20 s)
	KeepaliveFallback time.Duration // ping interval when the server's timeout is 0 or unknown
	MaxConnAge        time.Duration // retire the connection after this long (0: never)
	// RetryTimeout: give up (a fatal error) once the target has been
	// unreachable this long (0: keep trying).
	RetryTimeout time.Duration
	OnError      ErrorPolicy
	Log          zerolog.Logger
	// Throttle, if set, is called before each flight is sent with the number
	// of commands and bytes in it; it blocks until they may go.
	Throttle func(ctx context.Context, ops, bytes int) error
	// OnRedirect is called (from the writer's goroutine) when commands were
	// refused because their slot is elsewhere (MOVED, ASK, TRYAGAIN): the job
	// must take them with Redirected and route them again.
	OnRedirect func()
	// OnMarkerMoved, if set, is called (from the reply reader) when a
	// stream marker's SET is refused with MOVED: the slot it is tagged to
	// left this master, and no position of the writer is recorded there
	// again (a cluster target starts a new attempt; see
	// target.HomeMovedError). msg is the reply.
	OnMarkerMoved func(msg string)
	// OnLink, if set, is called (from the writer's goroutine) when the
	// writer's connection comes up or goes down: a cluster target follows a
	// failover when a master stays unreachable (see Stats().Connected).
	OnLink func()
	// OnConnect, if set, runs on every new connection before it writes
	// anything (after SELECT of MarkerDB): the job's lease check (package
	// lease). A *FatalError from it ends the writer; another error is a
	// failed connection.
	OnConnect func(c *resp.Conn) error
}

func (c *Config) defaults() {
	if c.MaxInflight <= 0 {
		c.MaxInflight = 32 << 20
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 8 << 20
	}
	if c.MaxSendOps <= 0 {
		// Under load, the more is coalesced the bigger each slot's group and
		// the cheaper the fence.
		c.MaxSendOps = 200000
	}
	if c.IOTimeout <= 0 {
		c.IOTimeout = 20 * time.Second
	}
	if c.KeepaliveFallback <= 0 {
		c.KeepaliveFallback = keepalive.Fallback
	}
}

// Stats are counters for status and metrics.
type Stats struct {
	Connected      bool
	Down           time.Duration // how long the target has been unreachable (0: connected or never tried)
	Reconnects     int64
	Batches        int64
	Ops            int64
	Groups         int64
	Bytes          int64
	Skipped        int64 // commands refused by the target and skipped
	Redirected     int64 // commands sent back for routing (MOVED/ASK)
	Pings          int64
	Queued         int64 // bytes waiting to be sent
	Inflight       int64 // bytes sent, not acknowledged
	ConnAge        time.Duration
	KeepaliveEvery time.Duration
	LastError      string
}

// Writer applies batches to one target server. Submit from one goroutine;
// Run owns the connection.
type Writer struct {
	cfg Config
	log zerolog.Logger

	// mu is the connection mutex: the sender and the keepalive both hold it
	// while they write, so a PING never lands inside a MULTI block.
	mu        sync.Mutex
	lastWrite time.Time
	conn      *resp.Conn // the current connection (guarded by mu)
	dialMu    sync.Mutex // guards cfg.Dial (Redial)

	planner planner // sender goroutine only
	// prev is the server's client ID of the last connection, the address
	// and the run id of that server (Run's goroutine only): see
	// closePrevious.
	prev struct {
		id          int64
		addr, runID string
	}
	warnedKill sync.Once
	// led holds every batch from Submit until the target applied it, and
	// the writer's fatal error: the state all its goroutines share.
	led *ledger

	// dirty: after a refusal the target is at no source position (a group
	// ran without a refused command, or groups ran past one that did not
	// run). Reply reader only, then Run.
	dirty     bool
	dirtyDone atomic.Bool // the dirty mark is on the target

	reconnects, skipped, redirects, pings atomic.Int64
	connected                             atomic.Bool
	born                                  atomic.Int64 // unix ns of the current connection
	downSince                             atomic.Int64 // unix ns since when the target is unreachable; 0: up
	kaEvery                               atomic.Int64
	lastErr                               atomic.Pointer[string]
	warned                                sync.Once
}

// New returns a writer; call Run to connect.
func New(cfg Config) *Writer {
	cfg.defaults()
	w := &Writer{cfg: cfg, log: cfg.Log.With().Str("conn", cfg.Name).Logger()}
	w.planner = newPlanner(&w.cfg)
	w.led = newLedger(ledgerConfig{
		slotted:    cfg.Slotted,
		skipFenced: w.skipFenced(),
		marker:     cfg.MarkerKey,
		maxQueued:  cfg.MaxQueued,
		limits: sendLimits{slotted: cfg.Slotted, fenced: cfg.Fence, oneByOne: w.skipFenced() || cfg.Throttle != nil,
			maxSendOps: cfg.MaxSendOps, maxInflight: cfg.MaxInflight, maxQueued: cfg.MaxQueued},
		onSkip: w.noteSkipped,
	}, cfg.Found)
	return w
}

// FatalError is an error that reconnecting will not fix.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// RewoundError says the target no longer holds what it acknowledged: it was
// restarted from an older snapshot, restarted empty, flushed by someone else,
// or failed over to a replica that had not received everything. The job must
// resume the source from what the target's markers say, or resync.
type RewoundError struct {
	Key      string // the marker that went back
	Found    bool
	Marker   Position
	Acked    uint64
	Endpoint string
}

func (e *RewoundError) Error() string {
	if !e.Found {
		return fmt.Sprintf("target %s lost ferry's marker %s (restarted empty or flushed?) after acknowledging unit %d", e.Endpoint, e.Key, e.Acked)
	}
	return fmt.Sprintf("target %s went back from unit %d to unit %d on %s (restarted from an older snapshot or failed over?)", e.Endpoint, e.Acked, e.Marker.Seq, e.Key)
}

// Submit queues b. It blocks while too many bytes are queued and returns the
// writer's fatal error, if any. The writer owns b from now on.
func (w *Writer) Submit(ctx context.Context, b *Batch) error {
	return w.led.submit(ctx, b)
}

// Inject queues ops that were routed here again (after a MOVED) ahead of
// everything not yet sent. Until they are applied, Applied does not claim
// their units.
func (w *Writer) Inject(ops []Op) {
	if len(ops) == 0 {
		return
	}
	b := NewBatch()
	for _, o := range ops {
		b.AddOp(o)
	}
	last := ops[len(ops)-1]
	b.Stream = last.Stream
	b.Pos = last.Pos
	b.Pos.Seq = last.Seq
	b.Pos.Offset = last.Off
	w.led.inject(b)
}

// Redirected returns the commands the target sent elsewhere, in the order
// they were sent; DropRedirected forgets them once routed again.
func (w *Writer) Redirected() []Op {
	return w.led.redirectedOps()
}

// DropRedirected forgets the first n redirected commands (routed again).
// Commands redirected since Redirected was called stay.
func (w *Writer) DropRedirected(n int) {
	w.led.dropRedirected(n)
}

// Redial makes the next connection go to another address: the master this
// writer served failed over. What was in flight is sorted out by the markers
// on the new master.
func (w *Writer) Redial(o Dial) {
	w.dialMu.Lock()
	w.cfg.Dial = o
	w.dialMu.Unlock()
	w.mu.Lock()
	if c := w.conn; c != nil {
		c.Close()
	}
	w.mu.Unlock()
}

// Dial is how to reach the server.
type Dial = dial.Options

func (w *Writer) dialOpts() dial.Options {
	w.dialMu.Lock()
	defer w.dialMu.Unlock()
	return w.cfg.Dial
}

// Drain waits until every submitted batch is acknowledged by the target.
func (w *Writer) Drain(ctx context.Context) error {
	return w.led.drain(ctx)
}

// Settle drops what was submitted but not sent yet and waits until
// everything sent is acknowledged: a stopping sync records where the target
// stands without first applying a backlog (a restart reads it from the
// source again).
func (w *Writer) Settle(ctx context.Context) error {
	w.led.dropQueued()
	return w.Drain(ctx)
}

// Confirm makes a round trip on the connection — it records the first
// stream's position again and waits for the acknowledgement — so that a
// connection that died unnoticed is found (and replaced) now.
func (w *Writer) Confirm(ctx context.Context) error {
	if p, key, ok := w.led.lastApplied(0); ok {
		b := NewBatch()
		b.Pos, b.MarkerKey = p, key
		if err := w.Submit(ctx, b); err != nil {
			return err
		}
	}
	return w.Drain(ctx)
}

// Pending reports whether batches of the stream are submitted and not yet
// acknowledged.
func (w *Writer) Pending(stream int) bool {
	return w.led.pending(stream)
}

// Addr is the target server's address.
func (w *Writer) Addr() string { return w.dialOpts().Addr }

// Applied is the position of the stream's last batch the target
// acknowledged (ok=false: none yet). While redirected or injected commands
// of the stream are outstanding, its offset stays below theirs.
func (w *Writer) Applied(stream int) (Position, bool) {
	return w.led.appliedAt(stream)
}

// Changed returns a channel closed at the writer's next change of state: a
// flight acknowledged, a batch queued or sent, a resume, a fatal error. A
// caller reads the state after taking the channel, then waits on it with
// its context — a wait notified by the writer, never a poll.
func (w *Writer) Changed() <-chan struct{} {
	return w.led.changed()
}

// Err is the writer's fatal error, if it has one.
func (w *Writer) Err() error {
	return w.led.err()
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	q, inf := w.led.sizes()
	s := Stats{
		Connected:      w.connected.Load(),
		Reconnects:     w.reconnects.Load(),
		Batches:        w.led.batches.Load(),
		Ops:            w.led.ops.Load(),
		Groups:         w.led.groups.Load(),
		Bytes:          w.led.bytes.Load(),
		Skipped:        w.skipped.Load(),
		Redirected:     w.redirects.Load(),
		Pings:          w.pings.Load(),
		Queued:         q,
		Inflight:       inf,
		KeepaliveEvery: time.Duration(w.kaEvery.Load()),
	}
	if s.Connected {
		s.ConnAge = time.Since(time.Unix(0, w.born.Load()))
	}
	if d := w.downSince.Load(); d != 0 {
		s.Down = time.Since(time.Unix(0, d))
	}
	if e := w.lastErr.Load(); e != nil {
		s.LastError = *e
	}
	return s
}

func (w *Writer) setFatal(err error) { w.led.setFatal(err) }

// Run connects and applies batches until ctx is done or a fatal error. After
// a dropped connection it reconnects with backoff and jitter and resumes from
// the target's markers. A RewoundError is returned to the caller, which must
// restart the source from the markers.
func (w *Writer) Run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	var readonlySince time.Time
	for {
		start := time.Now()
		err := w.session(ctx)
		established := w.connected.Swap(false)
		if established && w.cfg.OnLink != nil {
			w.cfg.OnLink()
		}
		if errors.Is(err, errRetire) {
			w.log.Info().Float64("age_s", time.Since(start).Round(time.Millisecond).Seconds()).Msg("connection retired by max_conn_age; reconnecting")
			w.reconnects.Add(1)
			continue
		}
		if fe := w.Err(); fe != nil {
			// A refusal halted the session (see session.halt).
			if w.dirty && !w.dirtyDone.Load() {
				w.markDirty(ctx)
			}
			return fe
		}
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		var re *RewoundError
		if errors.As(err, &re) {
			w.setFatal(err)
			return err
		}
		if errors.As(err, &fe) || fault.IsPermanent(err) {
			if fe == nil {
				err = &FatalError{fault.New("target "+w.Addr(), "", err)}
			}
			w.setFatal(err)
			return err
		}
		// Transient: retry with capped backoff, logged when the state
		// changes (down, back up), not per attempt.
		now := time.Now()
		if fault.Readonly(err) {
			if readonlySince.IsZero() {
				readonlySince = now
			} else if now.Sub(readonlySince) > fault.ReadonlyFor {
				err = &FatalError{fault.PermanentErr("target "+w.Addr(), "", "the address is a replica: give the master's address", fmt.Errorf("still READONLY after %s: %w", fault.ReadonlyFor, err))}
				w.setFatal(err)
				return err
			}
		} else {
			readonlySince = time.Time{}
		}
		msg := err.Error()
		w.lastErr.Store(&msg)
		w.reconnects.Add(1)
		down := w.downSince.Load()
		if down == 0 {
			down = now.UnixNano()
			w.downSince.Store(down)
			if established {
				w.log.Warn().Err(err).Msg("target connection lost; reconnecting")
			} else {
				w.log.Warn().Err(err).Msg("target unreachable; retrying")
			}
		} else {
			w.log.Debug().Err(err).Msg("target still unreachable")
		}
		if rt := w.cfg.RetryTimeout; rt > 0 && now.Sub(time.Unix(0, down)) >= rt {
			err = &FatalError{fault.PermanentErr("target "+w.Addr(), "", "bring the target back, or raise retry_timeout",
				fmt.Errorf("unreachable for %s, giving up (retry_timeout): %w", now.Sub(time.Unix(0, down)).Round(time.Second), err))}
			w.setFatal(err)
			return err
		}
		if established {
			backoff = 50 * time.Millisecond // the connection worked: a new drop, retry fast
		}
		d := backoff/2 + rand.N(backoff/2+1)
		if rt := w.cfg.RetryTimeout; rt > 0 {
			// The last attempt comes when the timeout runs out, not after.
			d = min(d, max(time.Until(time.Unix(0, down).Add(rt)), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// markDirty records on the target that it is not consistent with any source
// position, so that a restart does a full resync instead of resuming. The
// reply reader does it on the writer's own connection (finishHalt); this is
// the fallback for when that connection died first, after which the server
// runs nothing more of what it carried.
func (w *Writer) markDirty(ctx context.Context) {
	fail := func(err error) {
		w.log.Error().Err(err).Msg("could not mark the target position dirty; the next start must not resume")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	c, err := dial.Open(ctx, w.dialOpts(), w.cfg.Name, 4096)
	if err != nil {
		fail(err)
		return
	}
	defer c.Close()
	if !w.cfg.Slotted {
		if _, err := c.Do("SELECT", strconv.Itoa(w.cfg.MarkerDB)); err != nil {
			fail(err)
			return
		}
	}
	for key, p := range w.dirtyMarks() {
		if _, err := c.Do("SET", key, p.Encode()); err != nil {
			fail(err)
		}
	}
}

// dirtyMarks are the dirty markers to write: each stream's last position
// acknowledged in order.
func (w *Writer) dirtyMarks() map[string]Position {
	return w.led.dirtyMarks(w.cfg.StreamMarker)
}

// skipFenced: on_error = skip with the fence on a standalone target, where a
// command refused while queueing (unknown command, ACL) aborts its whole
// group: the group is sent again without it (see aborted).
func (w *Writer) skipFenced() bool {
	return w.cfg.OnError == Skip && w.cfg.Fence && !w.cfg.Slotted
}

// noteSkipped counts a command refused by the target and skipped.
func (w *Writer) noteSkipped(what, why string) {
	n := w.skipped.Add(1)
	if n <= 10 || n%1000 == 0 {
		w.log.Warn().Str("command", what).Str("error", why).Int64("skipped_total", n).Msg("target refused a command; skipped (on_error = skip)")
	}
}

// commandName is the upper-cased name of an encoded command.
func commandName(enc []byte) string {
	args, err := resp.ParseCommand(enc)
	if err != nil || len(args) == 0 {
		return ""
	}
	return strings.ToUpper(string(args[0]))
}
