// Package writer applies batches of commands to one target Redis server over
// one connection: pipelined (commands are streamed without waiting for their
// replies), acknowledged in order by a reply reader, bounded in flight, kept
// alive when idle, and — after any dropped connection — resumed from what the
// target itself says it has applied, so nothing is lost or applied twice.
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
	"golang.org/x/sync/errgroup"

	"ferry/dial"
	"ferry/keepalive"
	"ferry/resp"
)

// ErrorPolicy says what to do when the target refuses a command.
type ErrorPolicy int

const (
	// Stop ends the job with the error (after the batch it was in is
	// recorded as applied: the refused command is not retried).
	Stop ErrorPolicy = iota
	// Skip logs the refused command and goes on.
	Skip
)

// Config configures a Writer.
type Config struct {
	Name      string // CLIENT SETNAME, e.g. ferry-writer-0
	Dial      dial.Options
	MarkerKey string // where the position lives on the target
	MarkerDB  int
	// Fence applies every batch in MULTI/EXEC together with the marker, so a
	// replay after a drop never repeats a write. Without it a replay may
	// repeat the writes of the batch that was in flight when the link
	// dropped (harmless for SET/DEL/RESTORE, wrong for INCR/LPUSH/APPEND…).
	Fence bool
	// Start is the marker as the job found it before starting (found=false:
	// none). Acknowledged batches are numbered after it.
	Start      Position
	StartFound bool

	MaxInflight       int64         // bytes sent and not yet acknowledged (default 32 MiB)
	MaxQueued         int64         // bytes submitted and not yet sent (default 64 MiB)
	IOTimeout         time.Duration // no reply for this long while commands are outstanding: the link is dead (default 20 s)
	KeepaliveFallback time.Duration // ping interval when the server's timeout is 0 or unknown
	MaxConnAge        time.Duration // retire the connection after this long (0: never)
	OnError           ErrorPolicy
	Log               zerolog.Logger
	// Throttle, if set, is called before each batch is sent with the number
	// of commands and bytes in it; it blocks until they may go.
	Throttle func(ctx context.Context, ops, bytes int) error
}

func (c *Config) defaults() {
	if c.MaxInflight <= 0 {
		c.MaxInflight = 32 << 20
	}
	if c.MaxQueued <= 0 {
		c.MaxQueued = 64 << 20
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
	Reconnects     int64
	Batches        int64
	Ops            int64
	Bytes          int64
	Skipped        int64 // commands refused by the target and skipped
	Pings          int64
	Queued         int64 // bytes waiting to be sent
	Inflight       int64 // bytes sent, not acknowledged
	ConnAge        time.Duration
	KeepaliveEvery time.Duration
	LastError      string
}

// Writer applies batches to one target server. Submit batches from one
// goroutine; Run owns the connection.
type Writer struct {
	cfg Config
	log zerolog.Logger

	// mu is the connection mutex: the sender and the keepalive both hold it
	// while they write, so a PING never lands inside a MULTI block.
	mu        sync.Mutex
	lastWrite time.Time

	qmu           sync.Mutex
	cond          *sync.Cond
	queue         []*Batch
	queuedBytes   int64
	inflight      []*flight
	inflightBytes int64
	nextSeq       uint64
	ackedSeq      uint64 // last batch acknowledged (or found applied)
	applied       Position
	fatal         error
	dirty         bool // a fatal refusal happened with later batches pipelined past it

	reconnects, batches, ops, bytes, skipped, pings atomic.Int64
	connected                                       atomic.Bool
	born                                            atomic.Int64 // unix ns of the current connection
	kaEvery                                         atomic.Int64
	lastErr                                         atomic.Pointer[string]
	warned                                          sync.Once
}

// New returns a writer; call Run to connect.
func New(cfg Config) *Writer {
	cfg.defaults()
	w := &Writer{cfg: cfg, log: cfg.Log.With().Str("conn", cfg.Name).Logger()}
	w.cond = sync.NewCond(&w.qmu)
	if cfg.StartFound {
		w.ackedSeq = cfg.Start.Seq
		w.nextSeq = cfg.Start.Seq + 1
		w.applied = cfg.Start
	} else {
		w.nextSeq = 1
	}
	return w
}

// FatalError is an error that reconnecting will not fix.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// RewoundError says the target no longer holds what it acknowledged: it was
// restarted from an older snapshot, restarted empty, flushed by someone else,
// or failed over to a replica that had not received everything. The target is
// consistent as of Marker (Found=false: it holds no ferry position at all), so
// the job must resume the source from there, or resync.
type RewoundError struct {
	Marker   Position
	Found    bool
	Acked    uint64
	Endpoint string
}

func (e *RewoundError) Error() string {
	if !e.Found {
		return fmt.Sprintf("target %s lost ferry's position marker (restarted empty or flushed?) after acknowledging batch %d", e.Endpoint, e.Acked)
	}
	return fmt.Sprintf("target %s went back from batch %d to batch %d (restarted from an older snapshot or failed over?)", e.Endpoint, e.Acked, e.Marker.Seq)
}

var errRetire = errors.New("connection retired (max_conn_age)")

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

// Drain waits until every submitted batch is acknowledged by the target.
func (w *Writer) Drain(ctx context.Context) error {
	stop := context.AfterFunc(ctx, w.wake)
	defer stop()
	w.qmu.Lock()
	defer w.qmu.Unlock()
	for w.fatal == nil && ctx.Err() == nil && (len(w.queue) > 0 || len(w.inflight) > 0) {
		w.cond.Wait()
	}
	if w.fatal != nil {
		return w.fatal
	}
	return ctx.Err()
}

// Pending is the number of batches submitted and not yet acknowledged.
func (w *Writer) Pending() int {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	n := len(w.queue)
	for _, f := range w.inflight {
		if f.batch != nil {
			n++
		}
	}
	return n
}

// Addr is the target server's address.
func (w *Writer) Addr() string { return w.cfg.Dial.Addr }

// Applied is the position of the last batch the target acknowledged.
func (w *Writer) Applied() Position {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	return w.applied
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
		Bytes:          w.bytes.Load(),
		Skipped:        w.skipped.Load(),
		Pings:          w.pings.Load(),
		Queued:         q,
		Inflight:       inf,
		KeepaliveEvery: time.Duration(w.kaEvery.Load()),
	}
	if s.Connected {
		s.ConnAge = time.Since(time.Unix(0, w.born.Load()))
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
// the target's marker. A RewoundError is returned to the caller, which must
// restart the source from the marker.
func (w *Writer) Run(ctx context.Context) error {
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := w.session(ctx)
		established := w.connected.Swap(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errRetire) {
			w.log.Info().Dur("age", time.Since(start)).Msg("connection retired by max_conn_age; reconnecting")
			w.reconnects.Add(1)
			continue
		}
		var fe *FatalError
		var re *RewoundError
		if errors.As(err, &fe) || errors.As(err, &re) {
			w.setFatal(err)
			if w.dirty {
				w.markDirty(ctx)
			}
			return err
		}
		msg := err.Error()
		w.lastErr.Store(&msg)
		w.reconnects.Add(1)
		if established {
			backoff = 50 * time.Millisecond // the connection worked: a new drop, retry fast
		}
		d := backoff/2 + rand.N(backoff/2+1)
		w.log.Warn().Err(err).Dur("retry_in", d).Msg("target connection lost; reconnecting")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// markDirty records on the target that it is not consistent with any source
// position, so that a restart does a full resync instead of resuming.
func (w *Writer) markDirty(ctx context.Context) {
	c, err := dial.Open(ctx, w.cfg.Dial, w.cfg.Name, 4096)
	if err != nil {
		w.log.Error().Err(err).Msg("could not mark the target position dirty; the next start must not resume")
		return
	}
	defer c.Close()
	p := w.Applied()
	p.State = StateDirty
	if _, err := c.Do("SELECT", strconv.Itoa(w.cfg.MarkerDB)); err == nil {
		_, err = c.Do("SET", w.cfg.MarkerKey, p.Encode())
	}
	if err != nil {
		w.log.Error().Err(err).Msg("could not mark the target position dirty; the next start must not resume")
	}
}

type session struct {
	w        *Writer
	c        *resp.Conn
	curDB    int
	deadline time.Time // last read deadline set (guarded by w.qmu)
}

func (w *Writer) session(ctx context.Context) error {
	c, err := dial.Open(ctx, w.cfg.Dial, w.cfg.Name, 256<<10)
	if err != nil {
		if errors.Is(err, dial.ErrAuth) {
			return &FatalError{err}
		}
		return err
	}
	defer c.Close()
	c.Timeout = w.cfg.IOTimeout

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

	pos, found, err := ReadPosition(c, w.cfg.MarkerDB, w.cfg.MarkerKey)
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) && transient(re.Prefix()) {
			return err
		}
		if errors.As(err, &re) || !isNetErr(err) {
			return &FatalError{fmt.Errorf("%s: %w", w.cfg.Dial.Addr, err)}
		}
		return err
	}
	if err := w.resume(pos, found); err != nil {
		return err
	}

	s := &session{w: w, c: c, curDB: w.cfg.MarkerDB}
	w.mu.Lock()
	w.lastWrite = time.Now()
	w.mu.Unlock()
	w.born.Store(time.Now().UnixNano())
	w.connected.Store(true)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.send(gctx) })
	g.Go(func() error { return s.receive() })
	g.Go(func() error { return keepalive.Run(gctx, s, interval) })
	g.Go(func() error {
		<-gctx.Done()
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

// resume puts every batch that was in flight back at the head of the queue
// and drops those the marker says are applied.
func (w *Writer) resume(pos Position, found bool) error {
	w.qmu.Lock()
	defer w.qmu.Unlock()
	var back []*Batch
	for _, f := range w.inflight {
		if f.batch == nil {
			continue
		}
		b := f.batch
		if !f.fenced && f.acked > 0 {
			// Plain mode: the leading commands were acknowledged one by one.
			drop := map[int]bool{}
			for i := 0; i < f.acked; i++ {
				drop[i] = true
			}
			nb := b.without(drop)
			nb.seq = b.seq
			b.Release()
			b = nb
		}
		back = append(back, b)
		w.queuedBytes += int64(b.Size())
	}
	w.inflight = w.inflight[:0]
	w.inflightBytes = 0
	w.queue = append(back, w.queue...)

	var markerSeq uint64
	if found {
		markerSeq = pos.Seq
	}
	if markerSeq < w.ackedSeq || (!found && w.ackedSeq > 0) {
		return &RewoundError{Marker: pos, Found: found, Acked: w.ackedSeq, Endpoint: w.cfg.Dial.Addr}
	}
	maxSent := w.nextSeq - 1
	if markerSeq > maxSent {
		return &FatalError{fmt.Errorf("target %s: marker %s is at batch %d, beyond anything this ferry sent (%d): is another ferry running job %q against this target?",
			w.cfg.Dial.Addr, w.cfg.MarkerKey, markerSeq, maxSent, strings.TrimSuffix(strings.TrimPrefix(w.cfg.MarkerKey, "__ferry:"), ":pos"))}
	}
	n := 0
	for len(w.queue) > 0 && w.queue[0].seq != 0 && w.queue[0].seq <= markerSeq {
		b := w.queue[0]
		w.queue = w.queue[1:]
		w.queuedBytes -= int64(b.Size())
		w.ackLocked(b)
		n++
	}
	if n > 0 || len(back) > 0 {
		w.log.Info().Uint64("applied_batch", markerSeq).Int("found_applied", n).Int("replaying", len(back)-n).Msg("resumed from the target's marker")
	}
	w.cond.Broadcast()
	return nil
}

func (w *Writer) ackLocked(b *Batch) {
	w.applied = b.Pos
	w.applied.Seq = b.seq
	w.ackedSeq = b.seq
	w.batches.Add(1)
	w.ops.Add(int64(b.Len()))
	w.bytes.Add(int64(b.Size()))
	b.Release()
}

// flight is a request on the wire: a batch (fenced or plain) or a PING.
type flight struct {
	batch  *Batch
	fenced bool
	items  []int32 // per command sent: op index, or -1 for SELECT / marker / PING
	size   int64
	got    int // replies consumed
	acked  int // plain mode: leading op items acknowledged
	// fenced: errors reported while queueing, by item
	queueErrs map[int]string
}

const (
	itemInternal = -1
)

// next pops the next batch to send, flushing what is buffered before it
// waits, so that nothing sits in the write buffer while the sender sleeps.
func (s *session) next(ctx context.Context) (*Batch, error) {
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
		if len(w.queue) > 0 && (w.inflightBytes < w.cfg.MaxInflight || len(w.inflight) == 0) {
			b := w.queue[0]
			w.queue[0] = nil
			w.queue = w.queue[1:]
			w.queuedBytes -= int64(b.Size())
			if b.seq == 0 {
				b.seq = w.nextSeq
				w.nextSeq++
			}
			w.cond.Broadcast()
			return b, nil
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
		b, err := s.next(ctx)
		if err != nil {
			return err
		}
		if w.cfg.Throttle != nil {
			if err := w.cfg.Throttle(ctx, b.Len(), b.Size()); err != nil {
				w.requeueFront(b)
				return err
			}
		}
		if err := s.write(b); err != nil {
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

func (w *Writer) requeueFront(b *Batch) {
	w.qmu.Lock()
	w.queue = append([]*Batch{b}, w.queue...)
	w.queuedBytes += int64(b.Size())
	w.qmu.Unlock()
}

var (
	cmdMulti = resp.AppendCommandStrings(nil, "MULTI")
	cmdExec  = resp.AppendCommandStrings(nil, "EXEC")
	cmdPing  = resp.AppendCommandStrings(nil, "PING")
)

// plan lists what goes on the wire for b, so that the flight can be queued
// before any of its bytes can reach the server.
func (s *session) plan(b *Batch) *flight {
	w := s.w
	f := &flight{batch: b, fenced: w.cfg.Fence && b.Len() > 0}
	items := make([]int32, 0, b.Len()+4)
	// A fenced batch selects its own dbs from scratch: if the server aborts
	// it, none of its SELECTs ran, and the next batch must not depend on them.
	db := s.curDB
	if f.fenced {
		db = -2
	}
	for i := range b.ops {
		if d := b.ops[i].db; d >= 0 && d != db {
			items = append(items, itemInternal)
			db = d
		}
		items = append(items, int32(i))
	}
	if db != w.cfg.MarkerDB {
		items = append(items, itemInternal)
	}
	items = append(items, itemInternal) // SET marker
	f.items = items
	return f
}

func (s *session) write(b *Batch) error {
	w := s.w
	f := s.plan(b)
	pos := b.Pos
	pos.Seq = b.seq
	marker := resp.AppendCommandStrings(nil, "SET", w.cfg.MarkerKey, pos.Encode())

	w.mu.Lock()
	defer w.mu.Unlock()
	size := int64(b.Size() + len(marker) + 32)
	f.size = size
	s.push(f)

	c := s.c
	c.SetWriteDeadline(time.Now().Add(w.cfg.IOTimeout))
	var err error
	put := func(p []byte) {
		if err == nil {
			_, err = c.W.Write(p)
		}
	}
	if f.fenced {
		put(cmdMulti)
		s.curDB = -2
	}
	var sel []byte
	for i := range b.ops {
		enc, d := b.op(i)
		if d >= 0 && d != s.curDB {
			sel = appendSelect(sel[:0], d)
			put(sel)
			s.curDB = d
		}
		put(enc)
	}
	if s.curDB != w.cfg.MarkerDB {
		put(appendSelect(sel[:0], w.cfg.MarkerDB))
		s.curDB = w.cfg.MarkerDB
	}
	put(marker)
	if f.fenced {
		put(cmdExec)
	}
	w.lastWrite = time.Now()
	return err
}

func appendSelect(dst []byte, db int) []byte {
	dst = resp.AppendArrayHeader(dst, 2)
	dst = resp.AppendBulk(dst, []byte("SELECT"))
	return resp.AppendBulkInt(dst, int64(db))
}

// push queues f as in flight and arms the read deadline if it is the only one.
func (s *session) push(f *flight) {
	w := s.w
	w.qmu.Lock()
	w.inflight = append(w.inflight, f)
	w.inflightBytes += f.size
	if len(w.inflight) == 1 {
		s.armDeadline(true)
	}
	w.qmu.Unlock()
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
	s.push(&flight{items: []int32{itemInternal}, size: int64(len(cmdPing))})
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
	for {
		// Only arrays call onElemErr, and the only arrays ferry expects are
		// EXEC results, so errors collected here belong to the reply at hand.
		execErrs = nil
		kind, msg, err := s.c.R.ReadStatus(onElemErr)
		if err != nil {
			return err
		}
		// The flight is looked up after the reply arrives: a PING may have
		// been queued while this goroutine was blocked reading.
		w.qmu.Lock()
		var f *flight
		if len(w.inflight) > 0 {
			f = w.inflight[0]
		}
		w.qmu.Unlock()
		if f == nil {
			return &FatalError{fmt.Errorf("%s: unexpected reply %q with nothing outstanding", w.cfg.Dial.Addr, msg)}
		}
		done, err := s.feed(f, kind, msg, execErrs)
		if err != nil {
			return err
		}
		if done {
			s.complete(f)
		}
	}
}

// feed accounts one reply to f. It returns done once f is fully answered.
func (s *session) feed(f *flight, kind resp.Kind, msg string, execErrs map[int]string) (bool, error) {
	w := s.w
	f.got++
	if !f.fenced {
		item := f.items[f.got-1]
		if kind == resp.Error {
			if item == itemInternal {
				return false, s.refusal(f, -1, msg)
			}
			if err := s.opError(f.batch, int(item), msg); err != nil {
				return false, err
			}
		}
		if item >= 0 {
			f.acked = int(item) + 1
		}
		return f.got == len(f.items), nil
	}
	switch {
	case f.got == 1: // MULTI
		if kind == resp.Error {
			return false, &FatalError{fmt.Errorf("%s: MULTI refused: %s", w.cfg.Dial.Addr, msg)}
		}
		return false, nil
	case f.got <= len(f.items)+1: // +QUEUED or an error while queueing
		if kind == resp.Error {
			if f.queueErrs == nil {
				f.queueErrs = map[int]string{}
			}
			f.queueErrs[f.got-2] = msg
		}
		return false, nil
	}
	// EXEC
	if kind == resp.Error {
		return false, s.aborted(f, msg)
	}
	if msg == "null" {
		return false, &FatalError{fmt.Errorf("%s: EXEC returned no result", w.cfg.Dial.Addr)}
	}
	for i, m := range execErrs {
		if i < len(f.items) && f.items[i] >= 0 {
			if err := s.opError(f.batch, int(f.items[i]), m); err != nil {
				// The batch is applied (EXEC ran), so it is acknowledged
				// before the writer stops.
				s.complete(f)
				return false, err
			}
		} else if i < len(f.items) {
			return false, &FatalError{fmt.Errorf("%s: ferry's marker write failed: %s", w.cfg.Dial.Addr, m)}
		}
	}
	return true, nil
}

// aborted handles EXECABORT: nothing of the batch ran.
func (s *session) aborted(f *flight, execMsg string) error {
	w := s.w
	// Pick the first refusal to report.
	first, firstMsg := -1, execMsg
	for i := 0; i < len(f.items); i++ {
		if m, ok := f.queueErrs[i]; ok {
			first, firstMsg = i, m
			break
		}
	}
	if transient(prefix(firstMsg)) {
		return fmt.Errorf("%s: batch aborted, will retry: %s", w.cfg.Dial.Addr, firstMsg)
	}
	op := -1
	if first >= 0 {
		op = int(f.items[first])
	}
	return s.refusal(f, op, firstMsg)
}

// refusal stops the writer because the target refused a command while
// queueing it (unknown command, wrong arity, ACL, OOM…): the batch did not
// run, but later batches may already be pipelined behind it and run, so the
// target is no longer at any source position.
func (s *session) refusal(f *flight, op int, msg string) error {
	w := s.w
	what := "ferry's own command"
	if op >= 0 && f.batch != nil {
		what = f.batch.Describe(op)
	}
	w.qmu.Lock()
	later := len(w.inflight) > 1
	w.qmu.Unlock()
	if later {
		w.dirty = true
	}
	return &FatalError{fmt.Errorf("target %s refused %s: %s", w.cfg.Dial.Addr, what, msg)}
}

// opError applies the error policy to a command that failed while running.
func (s *session) opError(b *Batch, op int, msg string) error {
	w := s.w
	what := b.Describe(op)
	if w.cfg.OnError == Skip {
		n := w.skipped.Add(1)
		if n <= 10 || n%1000 == 0 {
			w.log.Warn().Str("command", what).Str("error", msg).Int64("skipped_total", n).Msg("target refused a command; skipped (on_error = skip)")
		}
		return nil
	}
	return &FatalError{fmt.Errorf("target %s refused %s: %s", w.cfg.Dial.Addr, what, msg)}
}

func (s *session) complete(f *flight) {
	w := s.w
	w.qmu.Lock()
	defer w.qmu.Unlock()
	if len(w.inflight) == 0 || w.inflight[0] != f {
		return // already completed (an applied batch with a stop-policy error)
	}
	w.inflight[0] = nil
	w.inflight = w.inflight[1:]
	w.inflightBytes -= f.size
	if f.batch != nil {
		w.ackLocked(f.batch)
	}
	s.armDeadline(len(w.inflight) > 0)
	w.cond.Broadcast()
}

func prefix(msg string) string {
	if i := strings.IndexByte(msg, ' '); i > 0 {
		return msg[:i]
	}
	return msg
}

// transient reports whether an error code means "try again later": the
// server is loading, busy, not a master right now, or mid-failover.
func transient(code string) bool {
	switch code {
	case "LOADING", "BUSY", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "TRYAGAIN", "UNBLOCKED":
		return true
	}
	return false
}

func isNetErr(err error) bool {
	var re *resp.ReplyError
	return !errors.As(err, &re) && !errors.Is(err, resp.ErrProtocol)
}
