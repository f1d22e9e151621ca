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
// which prefix of what was in flight the target applied.
package writer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

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
	// marker for restarts.
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
	slotKeys  []string   // sender goroutine only
	conn      *resp.Conn // the current connection (guarded by mu)
	dialMu    sync.Mutex // guards cfg.Dial (Redial)

	qmu           sync.Mutex
	cond          *notifyCond
	queue         []*Batch
	queuedBytes   int64
	inflight      []*flight
	inflightBytes int64
	sending       int               // batches taken off the queue and not yet in flight
	applied       map[int]Position  // stream → position of its last batch acknowledged
	streamKey     map[int]string    // standalone: stream → its marker key
	acked         map[string]uint64 // marker key → last unit acknowledged under it
	redirected    []Op
	injected      map[*Batch]bool // batches of re-routed ops not yet applied
	fatal         error
	// dirty: after a refusal the target is at no source position (a group
	// ran without a refused command, or groups ran past one that did not
	// run). Reply reader only, then Run.
	dirty     bool
	dirtyDone atomic.Bool // the dirty mark is on the target
	// skipFenced: command names the target refused while queueing (and
	// why), and names it has taken (guarded by qmu).
	refusedNames map[string]string
	takenNames   map[string]bool

	reconnects, batches, ops, groups, bytes, skipped, redirects, pings atomic.Int64
	connected                                                          atomic.Bool
	born                                                               atomic.Int64 // unix ns of the current connection
	downSince                                                          atomic.Int64 // unix ns since when the target is unreachable; 0: up
	kaEvery                                                            atomic.Int64
	lastErr                                                            atomic.Pointer[string]
	warned                                                             sync.Once
}

// New returns a writer; call Run to connect.
func New(cfg Config) *Writer {
	cfg.defaults()
	w := &Writer{cfg: cfg, log: cfg.Log.With().Str("conn", cfg.Name).Logger(), acked: map[string]uint64{},
		injected: map[*Batch]bool{}, applied: map[int]Position{}, streamKey: map[int]string{}}
	w.cond = &notifyCond{Cond: sync.NewCond(&w.qmu)}
	if !cfg.Slotted {
		for k, p := range cfg.Found {
			w.acked[k] = p.Seq
		}
	}
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

var errRetire = errors.New("connection retired (max_conn_age)")

// haltGrace is how long a halted session may go on reading the replies of
// what it sent after the job is told to stop.
const haltGrace = 5 * time.Second

// Submit queues b. It blocks while too many bytes are queued and returns the
// writer's fatal error, if any. The writer owns b from now on.
func (w *Writer) Submit(ctx context.Context, b *Batch) error {
	stop := context.AfterFunc(ctx, w.wake)
	defer stop()
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for w.fatal == nil && ctx.Err() == nil && w.queuedBytes >= w.cfg.MaxQueued && len(w.queue) > 0 {
		w.cond.Wait()
	}
	if w.fatal != nil {
		return w.fatal
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	w.queue = append(w.queue, b)
	w.queuedBytes += int64(b.Size())
	w.cond.Broadcast()
	return nil
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
	w.qmu.Lock()
	last := ops[len(ops)-1]
	b.Stream = last.Stream
	b.Pos = last.Pos
	b.Pos.Seq = last.Seq
	b.Pos.Offset = last.Off
	w.injected[b] = true
	w.queue = append([]*Batch{b}, w.queue...)
	w.queuedBytes += int64(b.Size())
	w.cond.Broadcast()
	w.qmu.Unlock()
}

// Redirected returns the commands the target sent elsewhere, in the order
// they were sent; ClearRedirected forgets them once routed again.
func (w *Writer) Redirected() []Op {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return append([]Op(nil), w.redirected...)
}

// DropRedirected forgets the first n redirected commands (routed again).
// Commands redirected since Redirected was called stay.
func (w *Writer) DropRedirected(n int) {
	w.qmu.Lock()
	w.redirected = append([]Op(nil), w.redirected[min(n, len(w.redirected)):]...)
	w.qmu.Unlock()
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
	stop := context.AfterFunc(ctx, w.wake)
	defer stop()
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for w.fatal == nil && ctx.Err() == nil && (len(w.queue) > 0 || len(w.inflight) > 0 || w.sending > 0) {
		w.cond.Wait()
	}
	if w.fatal != nil {
		return w.fatal
	}
	return ctx.Err()
}

// Settle drops what was submitted but not sent yet and waits until
// everything sent is acknowledged: a stopping sync records where the target
// stands without first applying a backlog (a restart reads it from the
// source again).
func (w *Writer) Settle(ctx context.Context) error {
	w.qmu.Lock()
	for _, b := range w.queue {
		w.queuedBytes -= int64(b.Size())
		delete(w.injected, b)
		b.Release()
	}
	w.queue = nil
	w.cond.Broadcast()
	w.qmu.Unlock()
	return w.Drain(ctx)
}

// Confirm makes a round trip on the connection — it records the first
// stream's position again and waits for the acknowledgement — so that a
// connection that died unnoticed is found (and replaced) now.
func (w *Writer) Confirm(ctx context.Context) error {
	w.qmu.Lock()
	p, ok := w.applied[0]
	key := w.streamKey[0]
	w.qmu.Unlock()
	if ok {
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
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for _, b := range w.queue {
		if b.Stream == stream {
			return true
		}
	}
	for _, f := range w.inflight {
		for _, b := range f.batches {
			if b.Stream == stream {
				return true
			}
		}
	}
	return w.sending > 0
}

// Addr is the target server's address.
func (w *Writer) Addr() string { return w.dialOpts().Addr }

// Applied is the position of the stream's last batch the target
// acknowledged (ok=false: none yet). While redirected or injected commands
// of the stream are outstanding, its offset stays below theirs.
func (w *Writer) Applied(stream int) (Position, bool) {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	p, ok := w.applied[stream]
	for _, o := range w.redirected {
		if o.Stream == stream {
			p.Offset = min(p.Offset, o.Off-1)
		}
	}
	for b := range w.injected {
		if b.Stream != stream {
			continue
		}
		for i := range b.ops {
			p.Offset = min(p.Offset, b.ops[i].off-1)
		}
	}
	return p, ok
}

// Changed returns a channel closed at the writer's next change of state: a
// flight acknowledged, a batch queued or sent, a resume, a fatal error. A
// caller reads the state after taking the channel, then waits on it with
// its context — a wait notified by the writer, never a poll.
func (w *Writer) Changed() <-chan struct{} {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if w.cond.ch == nil {
		w.cond.ch = make(chan struct{})
	}
	return w.cond.ch
}

// notifyCond is the writer's sync.Cond whose broadcasts can also be awaited
// in a select, with a context (see Changed). Broadcast is called with qmu
// held, which also guards ch.
type notifyCond struct {
	*sync.Cond
	ch chan struct{} // closed and cleared by the next Broadcast
}

func (c *notifyCond) Broadcast() {
	c.Cond.Broadcast()
	if c.ch != nil {
		close(c.ch)
		c.ch = nil
	}
}

// Err is the writer's fatal error, if it has one.
func (w *Writer) Err() error {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return w.fatal
}

// Stats returns the writer's counters.
func (w *Writer) Stats() Stats {
	w.qmu.Lock()
	q, inf := w.queuedBytes, w.inflightBytes
	w.qmu.Unlock()
	s := Stats{
		Connected:      w.connected.Load(),
		Reconnects:     w.reconnects.Load(),
		Batches:        w.batches.Load(),
		Ops:            w.ops.Load(),
		Groups:         w.groups.Load(),
		Bytes:          w.bytes.Load(),
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

func (w *Writer) wake() {
	w.qmu.Lock()
	w.cond.Broadcast()
	w.qmu.Unlock()
}

func (w *Writer) setFatal(err error) {
	w.qmu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.cond.Broadcast()
	w.qmu.Unlock()
}

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
		if errors.Is(err, errRetire) {
			w.log.Info().Dur("age", time.Since(start)).Msg("connection retired by max_conn_age; reconnecting")
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
	w.qmu.Lock()
	defer w.qmu.Unlock()
	marks := map[string]Position{}
	for stream, p := range w.applied {
		key := w.streamKey[stream]
		if w.cfg.Slotted {
			key = w.cfg.StreamMarker(stream)
		}
		p.State = StateDirty
		marks[key] = p
	}
	return marks
}

// skipFenced: on_error = skip with the fence on a standalone target, where a
// command refused while queueing (unknown command, ACL) aborts its whole
// group: the group is sent again without it (see aborted).
func (w *Writer) skipFenced() bool {
	return w.cfg.OnError == Skip && w.cfg.Fence && !w.cfg.Slotted
}

// skipProbeLocked prepares the head of the queue for skipFenced: commands
// the target refused before are taken out and counted as skipped, and it
// reports whether the batch holds a command the target has not taken yet.
// Such a batch goes out with nothing pipelined behind it, so that if the
// target refuses it, nothing after it has run and the batch can be sent
// again without the refused command, in order. Once every command name in
// the stream has been taken, batches are pipelined as usual. w.qmu held.
func (w *Writer) skipProbeLocked() bool {
	b := w.queue[0]
	if w.refusedNames == nil {
		w.refusedNames, w.takenNames = map[string]string{}, map[string]bool{}
	}
	var drop map[int]bool
	probe := false
	for i := range b.ops {
		name := commandName(b.op(i))
		if why, ok := w.refusedNames[name]; ok {
			if drop == nil {
				drop = map[int]bool{}
			}
			drop[i] = true
			w.noteSkipped(b.Describe(i), why)
			continue
		}
		if !w.takenNames[name] {
			probe = true
		}
	}
	if drop != nil {
		nb := b.without(func(i int) bool { return drop[i] })
		w.queuedBytes += int64(nb.Size() - b.Size())
		if w.injected[b] {
			delete(w.injected, b)
			w.injected[nb] = true
		}
		b.Release()
		w.queue[0] = nb
	}
	return probe
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

type session struct {
	// probing: the last flight holds a command the target has not taken
	// yet; nothing is sent until it is answered (skipFenced).
	probing bool

	// halted is the refusal that stopped the sender; hole: a group past it
	// did not run (reply reader only).
	halted  error
	hole    bool
	halting atomic.Bool // halted is set (read by the session's closer)

	w        *Writer
	c        *resp.Conn
	curDB    int
	deadline time.Time // last read deadline set (guarded by w.qmu)

	// plan's scratch (sender goroutine only): a slot belongs to the
	// current segment when slotGen[slot] == gen, as group slotGroup[slot].
	slotGen   []uint32
	slotGroup []int32
	gen       uint32
	scratch   []byte
}

func (w *Writer) session(ctx context.Context) error {
	d := w.dialOpts()
	c, err := dial.Open(ctx, d, w.cfg.Name, 256<<10)
	if err != nil {
		if fault.IsPermanent(err) || errors.Is(err, dial.ErrAuth) {
			return &FatalError{fmt.Errorf("target %w", err)}
		}
		return err
	}
	defer c.Close()
	c.Timeout = w.cfg.IOTimeout
	w.mu.Lock()
	w.conn = c
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.conn = nil
		w.mu.Unlock()
	}()

	timeout, terr := keepalive.ServerTimeout(c)
	if terr != nil && !errors.Is(terr, keepalive.ErrForbidden) {
		return fmt.Errorf("config get timeout: %w", terr)
	}
	if errors.Is(terr, keepalive.ErrForbidden) {
		timeout = -1
		w.warned.Do(func() {
			w.log.Info().Dur("interval", w.cfg.KeepaliveFallback).Msg("CONFIG GET timeout is not permitted on the target; keepalive uses keepalive_interval")
		})
	}
	interval := keepalive.Interval(timeout, w.cfg.KeepaliveFallback)
	w.kaEvery.Store(int64(interval))

	if !w.cfg.Slotted {
		if _, err := c.Do("SELECT", strconv.Itoa(w.cfg.MarkerDB)); err != nil {
			return classify(w.Addr(), err)
		}
	}
	if err := w.resume(c); err != nil {
		return err
	}

	s := &session{w: w, c: c, curDB: w.cfg.MarkerDB}
	// Replies to replicated commands are discarded as they are read; a
	// bulk one may be as long as any value.
	c.R.SetLimits(resp.StreamLimits())
	w.mu.Lock()
	w.lastWrite = time.Now()
	w.mu.Unlock()
	w.born.Store(time.Now().UnixNano())
	w.connected.Store(true)
	if down := w.downSince.Swap(0); down != 0 {
		w.log.Info().Dur("down_for", time.Since(time.Unix(0, down)).Round(time.Millisecond)).Msg("target connection back up")
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.send(gctx) })
	received := make(chan struct{})
	g.Go(func() error {
		defer close(received)
		return s.receive()
	})
	g.Go(func() error { return keepalive.Run(gctx, s, interval) })
	g.Go(func() error {
		<-gctx.Done()
		if s.halting.Load() {
			// After a refusal the job stops, but the replies of what was
			// sent still say what the target applied, for the marker: they
			// get a short while to come (the read deadline bounds it too).
			select {
			case <-received:
			case <-time.After(haltGrace):
			}
		}
		c.Close() // unblocks receive
		w.wake()  // unblocks send
		return nil
	})
	err = g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// classify wraps a handshake error: a refusal by the server is fatal unless
// it is a transient state (loading, failing over).
func classify(addr string, err error) error {
	var re *resp.ReplyError
	if errors.As(err, &re) {
		if !fault.IsPermanent(err) {
			return fmt.Errorf("%s: %w", addr, err)
		}
		return &FatalError{fault.New("target "+addr, re.Cmd, err)}
	}
	return err
}

// readMarkers reads the given marker keys in one round trip.
func readMarkers(c *resp.Conn, keys []string) (map[string]Position, error) {
	c.SetDeadline(time.Now().Add(c.Timeout))
	defer c.SetDeadline(time.Time{})
	for _, k := range keys {
		if _, err := c.W.Write(resp.AppendCommandStrings(nil, "GET", k)); err != nil {
			return nil, err
		}
	}
	if err := c.W.Flush(); err != nil {
		return nil, err
	}
	out := make(map[string]Position, len(keys))
	var firstErr error
	for _, k := range keys {
		v, err := c.R.ReadValue()
		if err != nil {
			return nil, err
		}
		switch {
		case v.IsError():
			if firstErr == nil {
				firstErr = &resp.ReplyError{Cmd: "GET", Msg: string(v.Str)}
			}
		case !v.Null:
			p, err := ParsePosition(string(v.Str))
			if err != nil {
				if firstErr == nil {
					firstErr = fmt.Errorf("%s: %w", k, err)
				}
				continue
			}
			out[k] = p
		}
	}
	return out, firstErr
}

// resume asks the target which of the groups in flight it applied, puts the
// rest back at the head of the queue, and checks that the target still holds
// everything it acknowledged before.
func (w *Writer) resume(c *resp.Conn) error {
	w.qmu.Lock()
	keys := make([]string, 0, len(w.acked)+8)
	seen := map[string]bool{}
	add := func(k string) {
		if k != "" && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	for k := range w.acked {
		add(k)
	}
	for _, f := range w.inflight {
		for i := range f.groups {
			add(f.groups[i].marker)
		}
	}
	w.qmu.Unlock()

	markers, err := readMarkers(c, keys)
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) && (re.Prefix() == "MOVED" || re.Prefix() == "ASK") {
			// A marker's slot moved away: the topology changed under us. The
			// groups in flight for it come back as redirected below.
			markers = map[string]Position{}
		} else {
			return classify(w.Addr(), err)
		}
	}

	w.qmu.Lock()
	defer w.qmu.Unlock()
	for k, seq := range w.acked {
		p, found := markers[k]
		if !found && w.cfg.Slotted {
			// A slot can leave this master (resharding) with its marker; the
			// job notices through MOVED, not here.
			continue
		}
		if !found || p.Seq < seq {
			return &RewoundError{Key: k, Found: found, Marker: p, Acked: seq, Endpoint: w.Addr()}
		}
	}

	// Groups were applied in the order they were sent: find the prefix.
	appliedOps := map[*Batch]map[int]bool{}
	done := true
	nApplied, nBack := 0, 0
	for _, f := range w.inflight {
		for i := range f.groups {
			g := &f.groups[i]
			if done && g.status == statusPending {
				if p, ok := markers[g.marker]; ok && p.Seq >= g.seq && g.seq > 0 {
					g.status = statusApplied
				} else {
					done = false
				}
			}
			switch g.status {
			case statusApplied:
				nApplied++
				w.acked[g.marker] = max(w.acked[g.marker], g.seq)
				for _, o := range g.ops {
					b := f.batches[o.b]
					if appliedOps[b] == nil {
						appliedOps[b] = map[int]bool{}
					}
					appliedOps[b][int(o.i)] = true
				}
			case statusRedirected:
				// already taken out by the reply reader
			default:
				nBack++
			}
		}
	}
	var back []*Batch
	prefix := true
	for _, f := range w.inflight {
		for _, b := range f.batches {
			drop := appliedOps[b]
			red := f.redirectedOps[b]
			if prefix && len(drop)+len(red) == b.Len() {
				w.ackBatchLocked(b)
				continue
			}
			prefix = false
			nb := b.without(func(i int) bool { return drop[i] || red[i] })
			if w.injected[b] {
				delete(w.injected, b)
				w.injected[nb] = true
			}
			b.Release()
			back = append(back, nb)
			w.queuedBytes += int64(nb.Size())
		}
	}
	w.inflight = w.inflight[:0]
	w.inflightBytes = 0
	w.queue = append(back, w.queue...)
	if nApplied > 0 || nBack > 0 {
		w.log.Info().Int("groups_found_applied", nApplied).Int("groups_replayed", nBack).Msg("resumed from the target's markers")
	}
	w.cond.Broadcast()
	return nil
}

func (w *Writer) markerOf(b *Batch) string {
	if b.MarkerKey != "" {
		return b.MarkerKey
	}
	return w.cfg.MarkerKey
}

// ackBatchLocked records that every command of b is applied.
func (w *Writer) ackBatchLocked(b *Batch) {
	if !w.injected[b] {
		w.applied[b.Stream] = b.Pos
	}
	delete(w.injected, b)
	if !w.cfg.Slotted {
		key := w.markerOf(b)
		w.acked[key] = max(w.acked[key], b.Pos.Seq)
		w.streamKey[b.Stream] = key
	}
	w.batches.Add(1)
	w.ops.Add(int64(b.Len()))
	w.bytes.Add(int64(b.Size()))
	b.Release()
}

type groupStatus uint8

const (
	statusPending groupStatus = iota
	statusApplied
	statusRedirected
)

type opAt struct{ b, i int32 }

// group is one transaction on the wire (or, unfenced, a run of commands).
type group struct {
	ops    []opAt
	items  []int32 // per command sent: index into ops, or -1 (SELECT, marker)
	marker string
	seq    uint64
	multi  bool
	status groupStatus
	set    [2]int // the marker's SET in the flight's arena

	got       int
	queueErrs map[int]string
}

// flight is what went out in one go: groups built from one or more batches,
// or a PING.
type flight struct {
	batches       []*Batch
	groups        []group
	arena         []byte // encoded marker SETs
	size          int64
	cur           int                     // group being answered
	redirectedOps map[*Batch]map[int]bool // ops sent back for routing
	resent        bool                    // its batch went back to the queue (see resend)
}

const itemInternal = -1

// next pops what to send next — as many queued batches as fit in one flight
// (for a standalone target under skipFenced or a throttle, one) — flushing what is buffered before it
// waits, so that nothing sits in the write buffer while the sender sleeps.
// A standalone writer with a flight outstanding holds a small queue back
// until that flight is answered.
func (s *session) next(ctx context.Context) ([]*Batch, error) {
	w := s.w
	w.qmu.Lock()
	defer w.qmu.Unlock()
	flushed := false
	for {
		if w.fatal != nil {
			return nil, w.fatal
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// After a batch with a command the target has not taken yet,
		// nothing goes out until it is answered (see skipProbeLocked).
		held := s.probing && len(w.inflight) > 0
		if !held && len(w.queue) > 0 && (w.inflightBytes < w.cfg.MaxInflight || len(w.inflight) == 0) {
			if w.skipFenced() {
				s.probing = w.skipProbeLocked()
			}
			n, ops, size := 1, w.queue[0].Len(), w.queue[0].Size()
			maxOps, maxBytes, coalesce := w.cfg.MaxSendOps, w.cfg.MaxInflight/2, w.cfg.Slotted
			if !w.cfg.Slotted && !w.skipFenced() && w.cfg.Throttle == nil {
				// Standalone: queued batches go out as one transaction (see
				// plan), of a bounded size: the target runs it in one go,
				// and what is in flight stays within MaxInflight. A
				// throttled writer sends batch by batch, so that the
				// limiter spaces them evenly.
				maxOps, maxBytes, coalesce = min(maxOps, standaloneSendOps), min(maxBytes, w.cfg.MaxInflight-w.inflightBytes), true
			}
			if coalesce {
				for n < len(w.queue) && ops+w.queue[n].Len() <= maxOps && int64(size+w.queue[n].Size()) <= maxBytes {
					ops += w.queue[n].Len()
					size += w.queue[n].Size()
					n++
				}
			}
			if !w.cfg.Slotted && coalesce && n == len(w.queue) && ops < standaloneHoldOps && len(w.inflight) > 0 {
				// A standalone flight is answered soon: a short queue
				// waits for it, to go out with what comes meanwhile as one
				// larger flight (fewer transactions, syscalls and wake-ups
				// under a steady load). An idle target gets every batch at
				// once, a backlog is pipelined.
				if !flushed {
					w.qmu.Unlock()
					err := s.flush()
					w.qmu.Lock()
					if err != nil {
						return nil, err
					}
					flushed = true
					continue
				}
				w.cond.Wait()
				flushed = false
				continue
			}
			bs := append([]*Batch(nil), w.queue[:n]...)
			clear(w.queue[:n])
			w.queue = w.queue[n:]
			w.queuedBytes -= int64(size)
			w.sending += n // until push puts them in flight, Drain must not see an idle writer
			w.cond.Broadcast()
			return bs, nil
		}
		if !flushed {
			w.qmu.Unlock()
			err := s.flush()
			w.qmu.Lock()
			if err != nil {
				return nil, err
			}
			flushed = true
			continue
		}
		w.cond.Wait()
		flushed = false
	}
}

func (s *session) flush() error {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	if s.c.W.Buffered() == 0 {
		return nil
	}
	s.c.SetWriteDeadline(time.Now().Add(s.w.cfg.IOTimeout))
	return s.c.W.Flush()
}

func (s *session) send(ctx context.Context) error {
	w := s.w
	for {
		if age := w.cfg.MaxConnAge; age > 0 && time.Since(time.Unix(0, w.born.Load())) >= age {
			return s.retire(ctx)
		}
		bs, err := s.next(ctx)
		if err != nil {
			if s.w.Err() != nil {
				// Halted by a refusal: the reply reader still reads what
				// was sent and ends the session.
				return nil
			}
			return err
		}
		if w.cfg.Throttle != nil {
			ops, size := 0, 0
			for _, b := range bs {
				ops += b.Len()
				size += b.Size()
			}
			// What is buffered goes out before the throttle may sleep.
			if err := s.flush(); err != nil {
				w.requeueFront(bs)
				return err
			}
			if err := w.cfg.Throttle(ctx, ops, size); err != nil {
				w.requeueFront(bs)
				return err
			}
		}
		if err := s.write(bs); err != nil {
			if w.Err() != nil {
				return nil
			}
			return err
		}
	}
}

// retire stops sending, waits for everything in flight to be acknowledged and
// ends the session so that Run reconnects.
func (s *session) retire(ctx context.Context) error {
	if err := s.flush(); err != nil {
		return err
	}
	w := s.w
	stop := context.AfterFunc(ctx, w.wake)
	defer stop()
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for len(w.inflight) > 0 && w.fatal == nil && ctx.Err() == nil {
		w.cond.Wait()
	}
	if w.fatal != nil {
		return w.fatal
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errRetire
}

func (w *Writer) requeueFront(bs []*Batch) {
	w.qmu.Lock()
	w.sending -= len(bs)
	w.queue = append(append([]*Batch(nil), bs...), w.queue...)
	for _, b := range bs {
		w.queuedBytes += int64(b.Size())
	}
	w.qmu.Unlock()
}

// standaloneSendOps bounds the commands of the batches a standalone writer
// coalesces into one flight (one transaction when fenced).
const standaloneSendOps = 8192

// standaloneHoldOps: a standalone writer with a flight outstanding holds
// back a queue of fewer commands than this (the batches an idle flush cut
// short) until the flight is answered; a longer queue (a backlog of full
// batches) is pipelined at once.
const standaloneHoldOps = 512

var (
	cmdSet      = []byte("SET")
	replyQueued = []byte("+QUEUED\r\n")
	cmdMulti    = resp.AppendCommandStrings(nil, "MULTI")
	cmdExec     = resp.AppendCommandStrings(nil, "EXEC")
	cmdPing     = resp.AppendCommandStrings(nil, "PING")
)

// slotKey is the slot's marker key (built once per slot).
func (w *Writer) slotKey(slot int) string {
	if w.slotKeys == nil {
		w.slotKeys = make([]string, 16384)
	}
	if k := w.slotKeys[slot]; k != "" {
		return k
	}
	k := w.cfg.SlotMarker(slot)
	w.slotKeys[slot] = k
	return k
}

// plan builds the groups of a flight, with their marker SETs encoded in the
// flight's arena.
func (s *session) plan(bs []*Batch) *flight {
	w := s.w
	f := &flight{batches: bs}
	var lows map[int]int64
	low := func(stream int) int64 {
		if w.cfg.Low == nil {
			return -1
		}
		l, ok := lows[stream]
		if !ok {
			if lows == nil {
				lows = map[int]int64{}
			}
			l = w.cfg.Low(stream)
			lows[stream] = l
		}
		return l
	}
	// setMarker encodes group gi's marker SET, recording unit seq at source
	// offset off of b's stream.
	setMarker := func(gi int, b *Batch, seq uint64, off int64) {
		g := &f.groups[gi]
		pos := b.Pos
		pos.Seq, pos.Offset, pos.Low = seq, off, low(b.Stream)
		g.seq = seq
		s.scratch = pos.AppendEncode(s.scratch[:0])
		start := len(f.arena)
		f.arena = resp.AppendArrayHeader(f.arena, 3)
		f.arena = resp.AppendBulk(f.arena, cmdSet)
		f.arena = resp.AppendBulkString(f.arena, g.marker)
		f.arena = resp.AppendBulk(f.arena, s.scratch)
		g.set = [2]int{start, len(f.arena)}
	}
	total := 0
	for _, b := range bs {
		total += len(b.ops)
	}
	flat := make([]opAt, 0, total) // every group's ops, group after group
	if !w.cfg.Slotted {
		// Standalone: one group per run of batches of one stream (a flight
		// holds the batches that were queued, see next), recording the
		// position of the run's last batch. A run's positions only grow:
		// a batch that records an earlier position (Confirm re-records the
		// last acknowledged one) starts a new group, so that no group's
		// marker is below a unit it applies.
		for bi := 0; bi < len(bs); {
			b := bs[bi]
			key := w.markerOf(b)
			from, bj := len(flat), bi
			for ; bj < len(bs) && bs[bj].Stream == b.Stream && w.markerOf(bs[bj]) == key && (bj == bi || bs[bj].Pos.Seq >= bs[bj-1].Pos.Seq); bj++ {
				for i := range bs[bj].ops {
					flat = append(flat, opAt{int32(bj), int32(i)})
				}
			}
			n, last := len(flat), bs[bj-1]
			f.groups = append(f.groups, group{ops: flat[from:n:n], marker: key, multi: w.cfg.Fence && n > from})
			setMarker(len(f.groups)-1, last, last.Pos.Seq, last.Pos.Offset)
			bi = bj
		}
		return f
	}
	// Position updates: the last batch of each stream in the flight.
	positions := func() {
		lastOf := map[int]int{}
		for i, b := range bs {
			lastOf[b.Stream] = i
		}
		for i, b := range bs {
			if lastOf[b.Stream] == i {
				f.groups = append(f.groups, group{marker: w.cfg.StreamMarker(b.Stream)})
				setMarker(len(f.groups)-1, b, b.Pos.Seq, b.Pos.Offset)
			}
		}
	}
	if !w.cfg.Fence {
		// Unfenced: everything in order, then the position updates.
		for bi, b := range bs {
			for i := range b.ops {
				flat = append(flat, opAt{int32(bi), int32(i)})
			}
		}
		if len(flat) > 0 {
			f.groups = append(f.groups, group{ops: flat})
		}
		positions()
		return f
	}
	// Cluster, fenced: one transaction per slot. Keyless commands (slot -1)
	// run alone and split the flight into segments, since everything before
	// them must run before and everything after them after. A segment's ops
	// are counted per slot first, then placed, so that each group's ops are
	// one run of flat.
	if s.slotGen == nil {
		s.slotGen = make([]uint32, 16384)
		s.slotGroup = make([]int32, 16384)
	}
	type last struct {
		b   int32
		seq uint64
		off int64
	}
	var (
		segFrom   opAt // first op of the segment
		segGroups = 0  // groups of the segment so far (f.groups[base:])
		base      = 0  // index in f.groups of the segment's first group
		counts    []int32
		lasts     []last
	)
	newSeg := func() {
		s.gen++
		if s.gen == 0 {
			clear(s.slotGen)
			s.gen = 1
		}
		base, segGroups = len(f.groups), 0
		counts, lasts = counts[:0], lasts[:0]
	}
	flushSeg := func(to opAt) {
		if segGroups == 0 {
			return
		}
		// Each group's run of flat starts where the previous one ends.
		at := int32(len(flat))
		for gi, n := range counts {
			f.groups[base+gi].ops = flat[at : at : at+n]
			at += n
		}
		flat = flat[:at]
		for bi := segFrom.b; bi <= to.b && int(bi) < len(bs); bi++ {
			ops := bs[bi].ops
			i0, i1 := int32(0), int32(len(ops))
			if bi == segFrom.b {
				i0 = segFrom.i
			}
			if bi == to.b {
				i1 = to.i
			}
			for i := i0; i < i1; i++ {
				slot := ops[i].slot
				gi := s.slotGroup[slot]
				g := &f.groups[base+int(gi)]
				g.ops = append(g.ops, opAt{bi, i})
			}
		}
		for gi := range segGroups {
			l := lasts[gi]
			setMarker(base+gi, bs[l.b], l.seq, l.off)
		}
	}
	newSeg()
	for bi, b := range bs {
		for i := range b.ops {
			o := &b.ops[i]
			if o.slot < 0 {
				flushSeg(opAt{int32(bi), int32(i)})
				flat = append(flat, opAt{int32(bi), int32(i)})
				n := len(flat)
				f.groups = append(f.groups, group{ops: flat[n-1 : n : n], marker: w.cfg.StreamMarker(b.Stream), multi: true})
				setMarker(len(f.groups)-1, b, o.seq, o.off)
				newSeg()
				segFrom = opAt{int32(bi), int32(i + 1)}
				continue
			}
			if s.slotGen[o.slot] != s.gen {
				s.slotGen[o.slot] = s.gen
				s.slotGroup[o.slot] = int32(segGroups)
				segGroups++
				f.groups = append(f.groups, group{marker: w.slotKey(int(o.slot)), multi: true})
				counts = append(counts, 0)
				lasts = append(lasts, last{})
			}
			gi := s.slotGroup[o.slot]
			counts[gi]++
			lasts[gi] = last{int32(bi), o.seq, o.off}
		}
	}
	flushSeg(opAt{int32(len(bs) - 1), int32(len(bs[len(bs)-1].ops))})
	if len(f.groups) == 0 {
		positions()
	}
	return f
}

func (s *session) write(bs []*Batch) error {
	w := s.w
	f := s.plan(bs)

	w.mu.Lock()
	defer w.mu.Unlock()
	// First the items of every group are laid out and the flight queued —
	// before any byte can reach the server, so that the reply reader always
	// finds what it reads for — then the bytes go out.
	curDB := s.curDB
	var size int64
	nops := 0
	for gi := range f.groups {
		nops += len(f.groups[gi].ops)
	}
	// One array holds every group's items (a standalone batch that switches
	// dbs often may outgrow it: the groups already laid out keep theirs).
	items := make([]int32, 0, nops+2*len(f.groups))
	for gi := range f.groups {
		g := &f.groups[gi]
		g.items = items[len(items):]
		if g.multi {
			curDB = -2 // a group selects its own dbs: if it is aborted, none of its SELECTs ran
		}
		for k, o := range g.ops {
			ref := bs[o.b].ops[o.i]
			if !w.cfg.Slotted && ref.db >= 0 && int(ref.db) != curDB {
				g.items = append(g.items, itemInternal)
				curDB = int(ref.db)
				size += 24
			}
			g.items = append(g.items, int32(k))
			size += int64(ref.end - ref.start)
		}
		if !w.cfg.Slotted && curDB != w.cfg.MarkerDB {
			g.items = append(g.items, itemInternal)
			curDB = w.cfg.MarkerDB
		}
		if g.marker != "" {
			g.items = append(g.items, itemInternal)
		}
		n := len(g.items)
		items, g.items = g.items[n:], g.items[:n:n]
	}
	f.size = size + int64(len(f.arena)) + int64(32*len(f.groups))
	if err := s.push(f); err != nil {
		w.qmu.Lock()
		w.sending -= len(bs)
		w.qmu.Unlock()
		return err
	}

	c := s.c
	c.SetWriteDeadline(time.Now().Add(w.cfg.IOTimeout))
	var err error
	put := func(p []byte) {
		if err == nil {
			_, err = c.W.Write(p)
		}
	}
	var sel []byte
	for gi := range f.groups {
		g := &f.groups[gi]
		if g.multi {
			put(cmdMulti)
			s.curDB = -2
		}
		// Commands that follow each other in their batch's buffer go out
		// in one write.
		var runB *Batch
		runStart, runEnd := 0, 0
		flushRun := func() {
			if runB != nil {
				put(runB.buf[runStart:runEnd])
				runB = nil
			}
		}
		for _, o := range g.ops {
			b := bs[o.b]
			ref := b.ops[o.i]
			if d := int(ref.db); !w.cfg.Slotted && d >= 0 && d != s.curDB {
				flushRun()
				sel = appendSelect(sel[:0], d)
				put(sel)
				s.curDB = d
			}
			if b == runB && ref.start == runEnd {
				runEnd = ref.end
				continue
			}
			flushRun()
			runB, runStart, runEnd = b, ref.start, ref.end
		}
		flushRun()
		if !w.cfg.Slotted && s.curDB != w.cfg.MarkerDB {
			put(appendSelect(sel[:0], w.cfg.MarkerDB))
			s.curDB = w.cfg.MarkerDB
		}
		if g.marker != "" {
			put(f.arena[g.set[0]:g.set[1]])
		}
		if g.multi {
			put(cmdExec)
		}
	}
	w.lastWrite = time.Now()
	return err
}

func appendSelect(dst []byte, db int) []byte {
	dst = resp.AppendArrayHeader(dst, 2)
	dst = resp.AppendBulk(dst, []byte("SELECT"))
	return resp.AppendBulkInt(dst, int64(db))
}

// push queues f as in flight and arms the read deadline if it is the only
// one. After a refusal nothing more goes out: push returns the error.
func (s *session) push(f *flight) error {
	w := s.w
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if w.fatal != nil {
		return w.fatal
	}
	w.inflight = append(w.inflight, f)
	w.inflightBytes += f.size
	w.sending -= len(f.batches)
	if len(w.inflight) == 1 {
		s.armDeadline(true)
	}
	return nil
}

// armDeadline sets the read deadline while requests are outstanding and
// clears it when none are (an idle connection may stay silent forever; the
// keepalive's PING re-arms it). Called with w.qmu held. Refreshes are rate
// limited: resetting the timer per reply is measurable on the hot path.
func (s *session) armDeadline(outstanding bool) {
	now := time.Now()
	if !outstanding {
		if !s.deadline.IsZero() {
			s.c.SetReadDeadline(time.Time{})
			s.deadline = time.Time{}
		}
		return
	}
	io := s.w.cfg.IOTimeout
	if s.deadline.IsZero() || s.deadline.Sub(now) < io*3/4 {
		s.deadline = now.Add(io)
		s.c.SetReadDeadline(s.deadline)
	}
}

// PingIfIdle implements keepalive.Pinger.
func (s *session) PingIfIdle(idle time.Duration) error {
	w := s.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if time.Since(w.lastWrite) < idle {
		return nil
	}
	if s.push(&flight{groups: []group{{items: []int32{itemInternal}}}, size: int64(len(cmdPing))}) != nil {
		return nil // halted: the reply reader ends the session
	}
	s.c.SetWriteDeadline(time.Now().Add(w.cfg.IOTimeout))
	if _, err := s.c.W.Write(cmdPing); err != nil {
		return err
	}
	w.lastWrite = time.Now()
	w.pings.Add(1)
	return s.c.W.Flush()
}

func (s *session) receive() error {
	w := s.w
	var execErrs map[int]string
	onElemErr := func(i int, msg string) {
		if execErrs == nil {
			execErrs = map[int]string{}
		}
		execErrs[i] = msg
	}
	var f *flight
	for {
		if s.halted != nil && f == nil && w.idleInflight() {
			return s.finishHalt()
		}
		// Only arrays call onElemErr, and the only arrays ferry expects are
		// EXEC results, so errors collected here belong to the reply at hand.
		execErrs = nil
		kind, msg, err := s.c.R.ReadStatus(onElemErr)
		if err != nil {
			if s.halted != nil {
				// The refusal is what the job must hear about; Run records
				// the dirty mark on a new connection if this one died first.
				return s.halted
			}
			return err
		}
		// The flight is looked up after the reply arrives (a PING may have
		// been queued while this goroutine was blocked reading), and kept
		// until it is complete: only this goroutine removes the head of the
		// queue, so it does not take the lock for every reply.
		if f == nil {
			w.qmu.Lock()
			if len(w.inflight) > 0 {
				f = w.inflight[0]
			}
			w.qmu.Unlock()
			if f == nil {
				return &FatalError{fmt.Errorf("%s: unexpected reply %q with nothing outstanding", w.Addr(), msg)}
			}
		}
		g := &f.groups[f.cur]
		done, err := s.feed(f, g, kind, msg, execErrs)
		if err == nil && !done && g.multi && g.got >= 1 {
			// Inside a transaction: the +QUEUED replies that are already
			// buffered are taken in one go.
			g.got += s.c.R.SkipRepeated(replyQueued, len(g.items)+1-g.got)
		}
		if err != nil {
			return err
		}
		if done {
			f.cur++
			if f.cur == len(f.groups) {
				s.complete(f)
				f = nil
			}
		}
	}
}

// idleInflight reports whether nothing is in flight.
func (w *Writer) idleInflight() bool {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return len(w.inflight) == 0
}

// halt records a refusal as the writer's fatal error — before any flight
// answered by the same reply is acknowledged, so that whoever wakes up
// (Drain, a caught-up check, a stop) sees the error and not an idle
// writer — and stops the sender: nothing is sent after it. What was
// already sent is still answered and accounted (the target runs it
// whatever ferry does) so that the markers can record where the target
// ended up; the reply reader then writes them and ends the session.
func (s *session) halt(err error) {
	if s.halted != nil {
		return
	}
	w := s.w
	s.halted = err
	s.halting.Store(true)
	w.qmu.Lock()
	if w.fatal == nil {
		w.fatal = err
	}
	w.cond.Broadcast()
	w.qmu.Unlock()
	// Flights pushed before the error was recorded must reach the server
	// for their replies to come; none is pushed after it.
	w.mu.Lock()
	if s.c.W.Buffered() > 0 {
		s.c.SetWriteDeadline(time.Now().Add(w.cfg.IOTimeout))
		s.c.W.Flush()
	}
	w.mu.Unlock()
}

// finishHalt runs once every flight sent before a refusal is answered: if
// the target is not at any source position (the refused command's group
// ran without it, or later groups ran past a group that did not), the
// markers say so (state dirty, at the last position acknowledged in
// order). They are written on this connection, after everything it
// carried: a marker written on another connection could land before a
// group still queued on this one and be overwritten by it.
func (s *session) finishHalt() error {
	w := s.w
	if !w.dirty {
		return s.halted
	}
	marks := w.dirtyMarks()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.cfg.Slotted {
		if _, err := s.c.Do("SELECT", strconv.Itoa(w.cfg.MarkerDB)); err != nil {
			w.log.Warn().Err(err).Msg("marking the target position dirty on the writer's connection")
			return s.halted
		}
	}
	for key, p := range marks {
		if _, err := s.c.Do("SET", key, p.Encode()); err != nil {
			w.log.Warn().Err(err).Msg("marking the target position dirty on the writer's connection")
			return s.halted
		}
	}
	w.dirtyDone.Store(true)
	return s.halted
}

// feed accounts one reply to group g of f. It returns done once g is fully
// answered. A refusal does not end the reading: it halts the writer (see
// halt) and the replies of what was already sent are read on.
func (s *session) feed(f *flight, g *group, kind resp.Kind, msg string, execErrs map[int]string) (bool, error) {
	w := s.w
	g.got++
	if !g.multi {
		if kind == resp.Error {
			if item := g.items[g.got-1]; item == itemInternal && f.batches != nil && s.halted == nil && redirect(msg) {
				// The home slot left this master: the marker update is
				// lost (the group is not applied), which only delays a
				// position record.
				return g.got == len(g.items), nil
			}
			if err := s.itemError(f, g, g.items[g.got-1], msg); err != nil {
				return false, err
			}
		}
		if g.got == len(g.items) {
			if g.status == statusPending {
				g.status = statusApplied
			}
			return true, nil
		}
		return false, nil
	}
	switch {
	case g.got == 1: // MULTI
		if kind == resp.Error {
			if s.halted == nil && transient(msg) {
				return false, fmt.Errorf("%s: will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "MULTI", Msg: msg})
			}
			// The group's commands now run one by one, outside any
			// transaction: the target is at no source position.
			w.dirty = true
			s.halt(&FatalError{fmt.Errorf("target %s refused MULTI: %s", w.Addr(), msg)})
		}
		return false, nil
	case g.got <= len(g.items)+1: // +QUEUED or an error while queueing
		if kind == resp.Error {
			if g.queueErrs == nil {
				g.queueErrs = map[int]string{}
			}
			g.queueErrs[g.got-2] = msg
		}
		return false, nil
	}
	// EXEC
	if kind == resp.Error {
		return s.aborted(f, g, msg)
	}
	if msg == "null" {
		s.halt(&FatalError{fmt.Errorf("%s: EXEC returned no result", w.Addr())})
		return true, nil
	}
	g.status = statusApplied
	for i, m := range execErrs {
		if i >= len(g.items) {
			continue
		}
		var err error
		if g.items[i] < 0 {
			err = &FatalError{fmt.Errorf("target %s: ferry's marker write failed: %s", w.Addr(), m)}
		} else {
			err = s.opError(f, g, int(g.items[i]), m)
		}
		if err != nil {
			// The group ran without this command (or its marker).
			w.dirty = true
			s.halt(err)
		}
	}
	return true, nil
}

// itemError handles an error reply to one command of an unfenced group.
func (s *session) itemError(f *flight, g *group, item int32, msg string) error {
	w := s.w
	switch {
	case f.batches == nil: // a keepalive PING
		if s.halted != nil {
			return nil
		}
		return fmt.Errorf("%s: PING: %s", w.Addr(), msg)
	case s.halted != nil:
		// Past a refusal, whatever fails here leaves a hole.
		w.dirty = true
	case transient(msg):
		// Nothing is known applied past here; the markers sort it out
		// after the reconnect.
		return fmt.Errorf("%s: will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "reply", Msg: msg})
	case redirect(msg) && item == itemInternal:
		// handled by feed
	case redirect(msg):
		s.redirectOps(f, g, []int{int(item)})
	case item == itemInternal:
		w.dirty = true
		s.halt(s.refusal(f, g, -1, msg))
	default:
		if err := s.opError(f, g, int(item), msg); err != nil {
			// The rest of the group runs without it.
			w.dirty = true
			s.halt(err)
		}
	}
	return nil
}

// aborted handles EXECABORT: nothing of the group ran.
func (s *session) aborted(f *flight, g *group, execMsg string) (bool, error) {
	w := s.w
	if s.halted != nil {
		return true, nil // not applied: complete sees the hole
	}
	first, firstMsg := -1, execMsg
	for i := 0; i < len(g.items); i++ {
		if m, ok := g.queueErrs[i]; ok {
			first, firstMsg = i, m
			break
		}
	}
	switch {
	case redirect(firstMsg):
		// The slot is elsewhere (or moving): the job routes these again.
		idx := make([]int, len(g.ops))
		for k := range idx {
			idx[k] = k
		}
		s.redirectOps(f, g, idx)
		return true, nil
	case transient(firstMsg):
		return false, fmt.Errorf("%s: transaction aborted, will retry: %w", w.Addr(), &resp.ReplyError{Cmd: "EXEC", Msg: firstMsg})
	}
	if w.skipFenced() && s.resend(f, g) {
		return true, nil
	}
	op := -1
	if first >= 0 {
		op = int(g.items[first])
	}
	s.halt(s.refusal(f, g, op, firstMsg))
	return true, nil
}

// resend handles a fenced group aborted because the target refused some of
// its commands while queueing, under on_error = skip: if nothing was sent
// after it, the group's batch goes back to the head of the queue without
// the refused commands, which are counted as skipped (and dropped from
// later batches before they are sent). false: it cannot be (a refused
// marker or SELECT, or later groups already ran), the refusal stands.
func (s *session) resend(f *flight, g *group) bool {
	w := s.w
	if len(f.batches) != 1 || len(f.groups) != 1 {
		return false
	}
	b := f.batches[0]
	drop := map[int]bool{}
	why := map[int]string{}
	for i, msg := range g.queueErrs {
		if i >= len(g.items) || g.items[i] < 0 {
			return false // ferry's own SELECT or marker
		}
		k := int(g.ops[g.items[i]].i)
		drop[k], why[k] = true, msg
	}
	if len(drop) == 0 {
		return false
	}
	w.qmu.Lock()
	defer w.qmu.Unlock()
	at := slices.Index(w.inflight, f)
	if at < 0 {
		return false
	}
	for _, later := range w.inflight[at+1:] {
		if later.batches != nil {
			return false
		}
	}
	if w.refusedNames == nil {
		w.refusedNames, w.takenNames = map[string]string{}, map[string]bool{}
	}
	for k := range drop {
		w.refusedNames[commandName(b.op(k))] = why[k]
		w.noteSkipped(b.Describe(k), why[k])
	}
	nb := b.without(func(i int) bool { return drop[i] })
	if w.injected[b] {
		delete(w.injected, b)
		w.injected[nb] = true
	}
	w.queue = append([]*Batch{nb}, w.queue...)
	w.queuedBytes += int64(nb.Size())
	f.resent = true
	w.cond.Broadcast()
	return true
}

// redirectOps takes commands of g out for routing again.
func (s *session) redirectOps(f *flight, g *group, idx []int) {
	w := s.w
	w.qmu.Lock()
	if f.redirectedOps == nil {
		f.redirectedOps = map[*Batch]map[int]bool{}
	}
	for _, k := range idx {
		at := g.ops[k]
		b := f.batches[at.b]
		if f.redirectedOps[b] == nil {
			f.redirectedOps[b] = map[int]bool{}
		}
		f.redirectedOps[b][int(at.i)] = true
		w.redirected = append(w.redirected, b.takeOp(int(at.i)))
	}
	if len(idx) == len(g.ops) {
		g.status = statusRedirected
	}
	w.qmu.Unlock()
	w.redirects.Add(int64(len(idx)))
	if w.cfg.OnRedirect != nil {
		w.cfg.OnRedirect()
	}
}

// refusal is the error for a command the target refused while queueing it
// (unknown command, wrong arity, ACL, OOM…): its group did not run.
func (s *session) refusal(f *flight, g *group, op int, msg string) error {
	w := s.w
	what := "ferry's own command"
	if op >= 0 {
		at := g.ops[op]
		what = f.batches[at.b].Describe(int(at.i))
	}
	return refused(w.Addr(), what, msg)
}

// refused is the fatal error for a command the target refused: one line
// naming the server, the command, the reply and the fix.
func refused(addr, what, msg string) error {
	_, fix := fault.Reply(msg)
	return &FatalError{fault.PermanentErr("target "+addr, "refused "+what, fix, errors.New(msg))}
}

// opError applies the error policy to a command that failed while running.
func (s *session) opError(f *flight, g *group, op int, msg string) error {
	w := s.w
	at := g.ops[op]
	what := f.batches[at.b].Describe(int(at.i))
	if w.cfg.OnError == Skip {
		n := w.skipped.Add(1)
		if n <= 10 || n%1000 == 0 {
			w.log.Warn().Str("command", what).Str("error", msg).Int64("skipped_total", n).Msg("target refused a command; skipped (on_error = skip)")
		}
		return nil
	}
	return refused(w.Addr(), what, msg)
}

// complete acknowledges a fully answered flight. After a refusal (halt),
// only what ran in order is acknowledged: a group that did not run leaves
// a hole, and a group that ran after a hole makes the target dirty.
func (s *session) complete(f *flight) {
	w := s.w
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if len(w.inflight) == 0 || w.inflight[0] != f {
		return
	}
	w.inflight[0] = nil
	w.inflight = w.inflight[1:]
	w.inflightBytes -= f.size
	if f.resent {
		f.batches[0].Release()
		s.armDeadline(len(w.inflight) > 0)
		w.cond.Broadcast()
		return
	}
	if w.skipFenced() && w.takenNames != nil && len(f.batches) == 1 {
		// The group ran: the target takes these commands.
		b := f.batches[0]
		for i := range b.ops {
			w.takenNames[commandName(b.op(i))] = true
		}
	}
	ack := true
	if s.halted != nil {
		for i := range f.groups {
			switch g := &f.groups[i]; {
			case g.status == statusPending && (len(g.ops) > 0 || g.marker != ""):
				s.hole = true
				ack = false
			case g.status == statusApplied && s.hole:
				w.dirty = true
			}
		}
		ack = ack && !s.hole
	}
	if ack {
		for i := range f.groups {
			g := &f.groups[i]
			if g.status == statusApplied && g.marker != "" && w.cfg.Slotted {
				w.acked[g.marker] = max(w.acked[g.marker], g.seq)
			}
		}
		w.groups.Add(int64(len(f.groups)))
		for _, b := range f.batches {
			w.ackBatchLocked(b)
		}
	}
	s.armDeadline(len(w.inflight) > 0)
	w.cond.Broadcast()
}

// transient reports whether an error reply means "try again later": the
// server is loading, busy, not a master right now, or mid-failover.
func transient(msg string) bool { return fault.Retry(msg) }

// redirect reports whether an error reply means the command's slot is
// served elsewhere, now or soon.
func redirect(msg string) bool { return fault.Redirect(msg) }
