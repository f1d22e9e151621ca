// The wire session: one connection to the target, its sender, its reply
// reader and its keepalive, until the connection ends (see Writer.session).

package writer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/keepalive"
	"github.com/ferry-dev/ferry/resp"
)

var errRetire = errors.New("connection retired (max_conn_age)")

// haltGrace is how long a halted session may go on reading the replies of
// what it sent after the job is told to stop.
const haltGrace = 5 * time.Second

type session struct {
	// halted is the refusal that stopped the sender; hole: a group past it
	// did not run (reply reader only).
	halted  error
	hole    bool
	halting atomic.Bool // halted is set (read by the session's closer)

	w        *Writer
	c        *resp.Conn
	wire     wire
	deadline time.Time // last read deadline set (guarded by the ledger's mu, see armDeadline)
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
			w.log.Info().Float64("interval_s", w.cfg.KeepaliveFallback.Seconds()).Msg("CONFIG GET timeout is not permitted on the target; keepalive uses keepalive_interval")
		})
	}
	interval := keepalive.Interval(timeout, w.cfg.KeepaliveFallback)
	w.kaEvery.Store(int64(interval))

	if !w.cfg.Slotted {
		if _, err := c.Do("SELECT", strconv.Itoa(w.cfg.MarkerDB)); err != nil {
			return classify(w.Addr(), err)
		}
	}
	if err := w.closePrevious(c); err != nil {
		return err
	}
	if w.cfg.OnConnect != nil {
		if err := w.cfg.OnConnect(c); err != nil {
			return err
		}
	}
	if err := w.resume(c); err != nil {
		return err
	}

	s := &session{w: w, c: c, wire: wire{slotted: w.cfg.Slotted, markerDB: w.cfg.MarkerDB, curDB: w.cfg.MarkerDB}}
	// Replies to replicated commands are discarded as they are read; a
	// bulk one may be as long as any value.
	c.R.SetLimits(resp.StreamLimits())
	w.mu.Lock()
	w.lastWrite = time.Now()
	w.mu.Unlock()
	w.born.Store(time.Now().UnixNano())
	w.connected.Store(true)
	if w.cfg.OnLink != nil {
		w.cfg.OnLink()
	}
	if down := w.downSince.Swap(0); down != 0 {
		w.log.Info().Float64("down_for_s", time.Since(time.Unix(0, down)).Round(time.Millisecond).Seconds()).Msg("target connection back up")
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
		c.Close()    // unblocks receive
		w.led.wake() // unblocks send
		return nil
	})
	err = g.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// closePrevious closes, on the server, the connection this writer had
// before c. A connection the writer gave up on (no reply within IOTimeout,
// a link that broke) may still be open there, with a transaction in its
// input buffer or still on the way: the server would apply it after resume
// has read the markers and the writer replayed it — applied twice. Once
// CLIENT KILL has run, nothing of the old connection runs any more. The
// ID is only killed on the server it belongs to (not after a Redial).
func (w *Writer) closePrevious(c *resp.Conn) error {
	prev := w.prev
	w.prev.id, w.prev.addr, w.prev.runID = 0, w.Addr(), ""
	v, err := c.Do("CLIENT", "ID")
	switch {
	case err == nil:
		w.prev.id = v.Int
	case !isRefusal(err):
		return classify(w.Addr(), err)
	}
	// The run id tells a restarted server, whose client IDs start again
	// (the old connection died with the old process, and the ID may now
	// be another client's).
	if info, err := c.Do("INFO", "server"); err == nil {
		w.prev.runID = ctl.InfoField(info.Text(), "run_id")
	} else if !isRefusal(err) {
		return classify(w.Addr(), err)
	}
	if prev.id == 0 || prev.addr != w.prev.addr || prev.runID == "" || prev.runID != w.prev.runID {
		return nil
	}
	_, err = c.Do("CLIENT", "KILL", "ID", strconv.FormatInt(prev.id, 10))
	var re *resp.ReplyError
	switch {
	case err == nil:
	case errors.As(err, &re) && strings.Contains(re.Msg, "No such client"):
	case isRefusal(err):
		w.warnedKill.Do(func() {
			w.log.Warn().Err(err).Msg("cannot close the previous target connection on the server (CLIENT ID, INFO or CLIENT KILL not permitted): a batch still on its way there when the connection broke could be applied twice")
		})
	default:
		return classify(w.Addr(), err)
	}
	return nil
}

// isRefusal says whether err is the server refusing a command (NOPERM,
// unknown or renamed command), not a broken connection.
func isRefusal(err error) bool {
	var re *resp.ReplyError
	return errors.As(err, &re)
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
		// As many queued batches as fit in one flight; what is buffered
		// goes out before the sender waits for them.
		bs, err := w.led.takeNext(ctx, s.flush)
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
				w.led.requeue(bs)
				return err
			}
			if err := w.cfg.Throttle(ctx, ops, size); err != nil {
				w.led.requeue(bs)
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
	if err := s.w.led.landed(ctx); err != nil {
		return err
	}
	return errRetire
}

func (s *session) write(bs []*Batch) error {
	w := s.w
	f := planFlight(bs, &w.planner)

	w.mu.Lock()
	defer w.mu.Unlock()
	// First the items of every group are laid out and the flight queued —
	// before any byte can reach the server, so that the reply reader always
	// finds what it reads for — then the bytes go out.
	s.wire.layout(f)
	if err := w.led.push(f, s.armDeadline); err != nil {
		return err
	}

	c := s.c
	c.SetWriteDeadline(time.Now().Add(w.cfg.IOTimeout))
	var err error
	s.wire.emit(f, func(p []byte) {
		if err == nil {
			_, err = c.W.Write(p)
		}
	})
	w.lastWrite = time.Now()
	return err
}

func appendSelect(dst []byte, db int) []byte {
	dst = resp.AppendArrayHeader(dst, 2)
	dst = resp.AppendBulk(dst, []byte("SELECT"))
	return resp.AppendBulkInt(dst, int64(db))
}

// armDeadline sets the read deadline while requests are outstanding and
// clears it when none are (an idle connection may stay silent forever; the
// keepalive's PING re-arms it). Called by the ledger, with its lock held, as
// flights come and go. Refreshes are rate
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
	if w.led.push(&flight{groups: []group{{items: []int32{itemInternal}}}, size: int64(len(cmdPing))}, s.armDeadline) != nil {
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

// receive reads the replies as they arrive. Reading them instead when the
// next flight goes out, the socket taken out of Go's poller so that a reply
// wakes no thread, cost ferry more CPU than it saved: the hand-off to this
// goroutine costs what the poller's wake-up does (bench/PROFILE.md section
// 22).
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
		if s.halted != nil && f == nil && w.led.idle() {
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
			if f = w.led.head(); f == nil {
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
	w.led.setFatal(err)
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
