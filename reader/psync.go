// Package reader is ferry's source side: a replica client that attaches to a
// Redis master with PSYNC and drains its replication link — the RDB snapshot,
// then the command stream — at network speed into a spool, so that the master
// never sees a slow replica, however slow the target is.
package reader

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/resp"
)

// Config configures a PSync reader.
type Config struct {
	Dial dial.Options
	Name string // CLIENT SETNAME, e.g. ferry-reader-0
	// ListeningPort is announced with REPLCONF listening-port; the master only
	// shows it in INFO replication. ferry listens on nothing, so 0 by default.
	ListeningPort int
	// ReadTimeout: no byte from the master for this long means the link is
	// dead. Masters PING their replicas every 10 s and send a newline every
	// second while they prepare a snapshot, so 60 s is generous.
	ReadTimeout time.Duration
	// Acked returns the offset the target has applied, which ferry reports to
	// the master with REPLCONF ACK (the master shows it as the replica's
	// offset, and WAIT counts it). 0 means nothing applied yet.
	Acked func() int64
	// Resolve, if set, says where to connect before each attempt: the
	// shard's master now (after a failover), or the replica to read from.
	Resolve func(ctx context.Context) (dial.Options, error)
	// Rewind, if set, is asked when the node to continue on branched off
	// ferry's history before ferry's offset (a failover, after which the
	// old master still sent ferry a PING or a PUBLISH): it reports whether
	// everything ferry received after offset to changed no data, so that
	// ferry may continue from to instead of taking a new snapshot.
	Rewind func(ctx context.Context, to int64) bool
	// RetryTimeout: give up (a FatalError) once the source has been
	// unreachable this long (0: keep trying).
	RetryTimeout time.Duration
	Log          zerolog.Logger
}

// Start says where to begin: an empty ReplID asks for a full resync.
type Start struct {
	ReplID string
	Offset int64 // the last offset already applied
}

// Stats describe the link for status and metrics.
type Stats struct {
	Addr         string // the node read from
	Phase        string // connecting, handshake, waiting-bgsave, rdb, streaming
	ReplID       string
	Received     int64 // offset of the last byte received
	RDBSize      int64 // -1: diskless (unknown until the end)
	RDBReceived  int64
	FullSyncs    int64
	PartialSyncs int64
	Reconnects   int64
	LastError    string
	// DownSince: the link has been down since then (zero while it is up
	// or before the first link).
	DownSince time.Time

	// Mode is how the source is read: "psync", or "scan" (SCAN + DUMP with
	// keyspace notifications).
	Mode string
	// Scan reader only: passes over the keyspace after the first (gaps),
	// changed keys waiting to be read again, keys read in the current pass
	// and the keys the source had when it began (DBSIZE).
	Rescans   int64
	Queue     int64
	ScanKeys  int64
	ScanTotal int64
	// Scan reader only: values read in pieces (too big to DUMP), and the
	// most bytes one piece of them held (its reply plus the commands built
	// from it and not yet written out).
	BigValues int64
	PeakPiece int64
}

// PSync is a replica client of one master.
type PSync struct {
	cfg Config
	out io.Writer

	wmu    sync.Mutex // guards writes to the current connection (ACKs)
	conn   *resp.Conn
	ackNow chan struct{}

	replid      string
	offset      int64 // offset of the last stream byte received
	linked      bool  // the stream continues from (replid, offset)
	established bool  // the current link got past PSYNC
	resynced    bool  // the current link began with a full resync

	mu    sync.Mutex
	stats Stats

	connectedOnce atomic.Bool
}

// FatalError is an error reconnecting will not fix (credentials, ACL,
// PSYNC disabled).
type FatalError struct {
	Err error
	// Refused: the source does not allow replication (PSYNC or REPLCONF
	// unknown, renamed, forbidden); it may still be read by scanning.
	Refused bool
}

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// NewPSync returns a reader that writes frames to out (a spool).
func NewPSync(cfg Config, out io.Writer) *PSync {
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 60 * time.Second
	}
	return &PSync{cfg: cfg, out: out, ackNow: make(chan struct{}, 1), stats: Stats{Addr: cfg.Dial.Addr, Mode: "psync"}}
}

// Stats returns a snapshot of the link's state.
func (p *PSync) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

func (p *PSync) update(fn func(*Stats)) {
	p.mu.Lock()
	fn(&p.stats)
	p.mu.Unlock()
}

// AckNow asks for a REPLCONF ACK at once (the master sent REPLCONF GETACK).
func (p *PSync) AckNow() {
	select {
	case p.ackNow <- struct{}{}:
	default:
	}
}

// Run keeps the link up until ctx is done or a fatal error: on a drop it
// reconnects with backoff and asks to continue where it was.
func (p *PSync) Run(ctx context.Context, start Start) error {
	if start.ReplID != "" {
		p.replid, p.offset, p.linked = start.ReplID, start.Offset, true
	}
	backoff := 100 * time.Millisecond
	for {
		p.established, p.resynced = false, false
		err := p.link(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
		if errors.Is(err, resp.ErrProtocol) {
			// Bytes no Redis master sends (or more than ferry accepts from
			// one): reconnecting would read the same again.
			return &FatalError{Err: err}
		}
		if !p.connectedOnce.Load() {
			// Never got a link: a wrong address or a refused handshake is a
			// configuration problem the user must see now, not a retry loop.
			return &FatalError{Err: err}
		}
		if fault.IsPermanent(err) {
			return &FatalError{Err: err}
		}
		msg := err.Error()
		wasDown := false
		var downSince time.Time
		p.update(func(s *Stats) {
			s.Reconnects++
			s.LastError = msg
			s.Phase = "connecting"
			if wasDown = !s.DownSince.IsZero(); !wasDown {
				s.DownSince = time.Now()
			}
			downSince = s.DownSince
		})
		if rt := p.cfg.RetryTimeout; rt > 0 && time.Since(downSince) >= rt {
			return &FatalError{Err: fault.PermanentErr("source "+p.cfg.Dial.Addr, "", "bring the source back, or raise retry_timeout",
				fmt.Errorf("unreachable for %s, giving up (retry_timeout): %w", time.Since(downSince).Round(time.Second), err))}
		}
		if p.established {
			// The link worked: this is a new drop, not a retry of a failed
			// connect, so come back fast.
			backoff = 100 * time.Millisecond
		}
		d := backoff/2 + rand.N(backoff/2+1)
		if wasDown {
			p.cfg.Log.Debug().Err(err).Float64("retry_in_s", d.Round(time.Millisecond).Seconds()).Msg("source still unreachable")
		} else if p.resynced && closedByPeer(err) {
			p.cfg.Log.Warn().Err(err).Int64("offset", p.offset).Msg("source link lost after a full resync; reconnecting (" + outputLimitHint + ")")
		} else {
			p.cfg.Log.Warn().Err(err).Int64("offset", p.offset).Msg("source link lost; reconnecting")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (p *PSync) frame(kind byte, parts ...[]byte) error {
	n := 0
	for _, b := range parts {
		n += len(b)
	}
	buf := appendFrameHeader(make([]byte, 0, frameHeader+n), kind, n)
	for _, b := range parts {
		buf = append(buf, b...)
	}
	_, err := p.out.Write(buf)
	return err
}

// link runs one connection: handshake, PSYNC, snapshot if any, stream.
func (p *PSync) link(ctx context.Context) error {
	p.update(func(s *Stats) { s.Phase = "connecting" })
	if p.cfg.Resolve != nil {
		d, err := p.cfg.Resolve(ctx)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		if d.Addr != p.cfg.Dial.Addr {
			if p.cfg.Dial.Addr != "" {
				p.cfg.Log.Info().Str("old", p.cfg.Dial.Addr).Str("new", d.Addr).Msg("source shard is served by another node now; continuing there")
			}
			p.mu.Lock()
			p.cfg.Dial = d
			p.stats.Addr = d.Addr
			p.mu.Unlock()
		}
	}
	addr := p.cfg.Dial.Addr
	c, err := openSource(ctx, p.cfg.Dial, p.cfg.Name, 1<<20)
	if err != nil {
		return err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	p.update(func(s *Stats) { s.Phase = "handshake" })
	c.Timeout = 10 * time.Second
	if _, err := c.Do("REPLCONF", "listening-port", strconv.Itoa(p.cfg.ListeningPort)); err != nil {
		return handshakeErr(addr, "REPLCONF listening-port", err)
	}
	if _, err := c.Do("REPLCONF", "capa", "eof", "capa", "psync2"); err != nil {
		return handshakeErr(addr, "REPLCONF capa", err)
	}
	if p.linked && p.cfg.Rewind != nil {
		p.branchPoint(ctx)
	}
	replid, from := "?", "-1"
	if p.linked {
		replid, from = p.replid, strconv.FormatInt(p.offset+1, 10)
	}
	c.SetDeadline(time.Now().Add(p.cfg.ReadTimeout))
	if _, err := c.W.Write(resp.AppendCommandStrings(nil, "PSYNC", replid, from)); err != nil {
		return err
	}
	if err := c.W.Flush(); err != nil {
		return err
	}
	line, err := p.readLine(c)
	if err != nil {
		return fmt.Errorf("psync %s: %w", addr, err)
	}
	p.connectedOnce.Store(true)
	p.established = true
	var downSince time.Time
	p.update(func(s *Stats) { downSince, s.DownSince = s.DownSince, time.Time{} })
	if !downSince.IsZero() {
		p.cfg.Log.Info().Float64("down_for_s", time.Since(downSince).Round(time.Millisecond).Seconds()).Msg("source link back up")
	}
	switch {
	case strings.HasPrefix(line, "+FULLRESYNC"):
		f := strings.Fields(line)
		if len(f) != 3 {
			return fmt.Errorf("psync %s: %w: unexpected reply %q", addr, resp.ErrProtocol, clip(line))
		}
		off, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return fmt.Errorf("psync %s: %w: unexpected reply %q", addr, resp.ErrProtocol, clip(line))
		}
		why := "first sync"
		if p.linked {
			why = fmt.Sprintf("the source cannot continue from %s:%d (backlog overrun, or a different history)", p.replid, p.offset)
		}
		p.cfg.Log.Info().Str("replid", f[1]).Int64("offset", off).Str("reason", why).Msg("full resync")
		p.replid, p.offset, p.linked = f[1], off, false
		p.update(func(s *Stats) { s.FullSyncs++; s.ReplID = f[1]; s.Received = off; s.Phase = "waiting-bgsave" })
		p.resynced = true
		if err := p.snapshot(c); err != nil {
			return err
		}
		p.linked = true
	case strings.HasPrefix(line, "+CONTINUE"):
		f := strings.Fields(line)
		if len(f) == 2 && f[1] != p.replid {
			p.cfg.Log.Info().Str("old_replid", p.replid).Str("new_replid", f[1]).Msg("source has a new replication id (failover); continuing its history")
			p.replid = f[1]
		}
		p.cfg.Log.Info().Int64("offset", p.offset).Msg("partial resync: continuing without a new snapshot")
		if err := p.frame(frameContinue, appendPos(nil, p.replid, p.offset)); err != nil {
			return err
		}
		p.update(func(s *Stats) { s.PartialSyncs++; s.ReplID = p.replid })
	case strings.HasPrefix(line, "-"):
		return psyncRefused(addr, clip(line[1:]))
	default:
		return fmt.Errorf("psync %s: %w: unexpected reply %q", addr, resp.ErrProtocol, clip(line))
	}

	p.wmu.Lock()
	p.conn = c
	p.wmu.Unlock()
	defer func() {
		p.wmu.Lock()
		p.conn = nil
		p.wmu.Unlock()
	}()
	// A diskless master waits for the first ACK before it streams commands.
	if err := p.ack(); err != nil {
		return err
	}
	p.update(func(s *Stats) { s.Phase = "streaming" })

	ackCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ackErr := make(chan error, 1)
	go func() { ackErr <- p.ackLoop(ackCtx) }()
	err = p.stream(c)
	cancel()
	if aerr := <-ackErr; err == nil {
		err = aerr
	}
	return err
}

// branchPoint checks whether the node continues ferry's history only up to an
// offset before ferry's — it was promoted while its old master went on
// sending ferry bytes — and if those bytes changed no data, moves ferry's
// offset back to the branch point so that PSYNC can continue there.
func (p *PSync) branchPoint(ctx context.Context) {
	c, err := dial.Open(ctx, p.cfg.Dial, "", 4096)
	if err != nil {
		return
	}
	defer c.Close()
	v, err := c.Do("INFO", "replication")
	if err != nil {
		return
	}
	info := string(v.Str)
	field := func(name string) string {
		for _, l := range strings.Split(info, "\n") {
			if val, ok := strings.CutPrefix(strings.TrimSpace(l), name+":"); ok {
				return val
			}
		}
		return ""
	}
	if field("master_replid2") != p.replid {
		return
	}
	second, err := strconv.ParseInt(field("second_repl_offset"), 10, 64)
	if err != nil || second <= 0 || second-1 >= p.offset {
		return
	}
	to := second - 1
	if !p.cfg.Rewind(ctx, to) {
		p.cfg.Log.Info().Int64("offset", p.offset).Int64("branch", to).Msg("the new master's history branched off before ferry's position, and ferry applied writes past the branch: a full resync follows")
		return
	}
	p.cfg.Log.Info().Int64("offset", p.offset).Int64("branch", to).Msg("the new master's history branched off before ferry's position, past which ferry received no data changes: continuing at the branch")
	p.offset = to
	p.update(func(s *Stats) { s.Received = to })
}

// readLine reads one reply line, skipping the bare newlines a master sends
// to keep the link alive while it prepares a snapshot.
func (p *PSync) readLine(c *resp.Conn) (string, error) {
	br := c.R.Bufio()
	for {
		c.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", &resp.LimitError{What: "line", Size: int64(len(b)), Limit: int64(br.Size())}
		}
		if err != nil {
			return "", err
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s != "" {
			return s, nil
		}
	}
}

// snapshot copies the RDB into the spool, by length or up to the diskless
// EOF mark.
func (p *PSync) snapshot(c *resp.Conn) error {
	addr := p.cfg.Dial.Addr
	// Nothing arrives until the source has its snapshot under way: say
	// what the wait is if it lasts (a diskless source waits
	// repl-diskless-sync-delay, 5 s by default, for more replicas).
	said := time.AfterFunc(time.Second, func() {
		p.cfg.Log.Info().Msg("waiting for the source's snapshot: it is forking its BGSAVE or, with repl-diskless-sync, waiting repl-diskless-sync-delay (5 s by default) for other replicas")
	})
	hdr, err := p.readLine(c)
	said.Stop()
	if err != nil {
		return fmt.Errorf("psync %s: waiting for the snapshot: %w", addr, err)
	}
	if !strings.HasPrefix(hdr, "$") {
		return fmt.Errorf("psync %s: %w: expected the snapshot, got %q", addr, resp.ErrProtocol, clip(hdr))
	}
	var mark *eofMark
	size := int64(-1)
	if m, ok := strings.CutPrefix(hdr, "$EOF:"); ok {
		if len(m) != 40 {
			return fmt.Errorf("psync %s: %w: bad diskless EOF mark %q", addr, resp.ErrProtocol, clip(m))
		}
		mark = newEOFMark([]byte(m))
	} else if size, err = strconv.ParseInt(hdr[1:], 10, 64); err != nil || size < 0 {
		return fmt.Errorf("psync %s: %w: bad snapshot length %q", addr, resp.ErrProtocol, clip(hdr))
	}
	if err := p.frame(frameFullSync, binaryAppendInt64(appendPos(nil, p.replid, p.offset), size)); err != nil {
		return err
	}
	p.update(func(s *Stats) { s.Phase = "rdb"; s.RDBSize = size; s.RDBReceived = 0 })
	p.cfg.Log.Info().Int64("bytes", size).Bool("diskless", mark != nil).Msg("receiving snapshot")

	br := c.R.Bufio()
	own := make([]byte, frameHeader+256<<10)
	lw := newLowWater(c.Conn)
	defer lw.set(1) // the command stream is read as it comes
	var got int64
	// held keeps the last len(mark) bytes back until it is known whether they
	// are the EOF mark.
	var held []byte
	for {
		want := len(own) - frameHeader - len(held)
		if size >= 0 {
			want = int(min(int64(want), size-got))
			if want == 0 {
				break
			}
		}
		// Less room than a batch left in the spool's chunk would split a
		// batch over two reads: own takes it, and is copied.
		buf := p.room(own, frameHeader+len(held)+min(want, snapshotBatch), frameHeader+len(held)+want)
		want = len(buf) - frameHeader - len(held)
		data := buf[frameHeader:]
		copy(data, held)
		into := data[len(held) : len(held)+want]
		// Batched wake-ups while more than a batch is to come; the short
		// deadline ends a wait for a batch that will not fill (the
		// snapshot's tail, or a source that pauses), and the read after it
		// takes what is queued, waking on any byte.
		batched := lw.ok() && (size < 0 || size-got >= snapshotBatch)
		if batched {
			lw.set(snapshotBatch)
			c.SetReadDeadline(time.Now().Add(snapshotBatchWait))
		} else {
			// Less than a batch is to come: a level left from the batched
			// reads would sleep through the tail until the read timeout.
			lw.set(1)
			c.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
		}
		n, err := readSnapshot(br, c.Conn, into)
		if batched && errors.Is(err, os.ErrDeadlineExceeded) {
			lw.set(1)
			c.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
			n, err = readSnapshot(br, c.Conn, into)
		}
		if err != nil {
			return fmt.Errorf("psync %s: snapshot cut off after %d bytes: %w", addr, got, err)
		}
		data = data[:len(held)+n]
		if mark != nil {
			if i := mark.index(data); i >= 0 {
				// Anything after the mark is already the command stream:
				// push it back by treating it as the start of the stream.
				rest := append([]byte(nil), data[i+len(mark.mark):]...)
				if err := p.emit(frameRDB, buf, data[:i]); err != nil {
					return err
				}
				got += int64(i)
				p.update(func(s *Stats) { s.RDBReceived = got; s.RDBSize = got })
				if err := p.frame(frameRDBEnd, nil); err != nil {
					return err
				}
				if len(rest) > 0 {
					p.offset += int64(len(rest))
					return p.frame(frameStream, binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano())), rest)
				}
				return nil
			}
			keep := min(len(mark.mark), len(data))
			out := data[:len(data)-keep]
			held = append(held[:0], data[len(data)-keep:]...)
			if err := p.emit(frameRDB, buf, out); err != nil {
				return err
			}
			got += int64(len(out))
		} else {
			if err := p.emit(frameRDB, buf, data); err != nil {
				return err
			}
			got += int64(n)
		}
		g := got
		p.update(func(s *Stats) { s.RDBReceived = g })
	}
	p.cfg.Log.Info().Int64("bytes", got).Msg("snapshot received")
	return p.frame(frameRDBEnd, nil)
}

// snapshotBatch is the level at which a snapshot's reader is woken (see
// lowWater): four of the source's 16 KiB writes and a quarter of the read
// buffer. It halved the reads of a full sync and cut ferry's CPU there by a
// third; 128 KiB did no better. snapshotBatchWait bounds how long a read
// waits for a batch to fill; a source streaming a snapshot fills one in
// about two milliseconds, so only a pause or the tail waits it out.
const (
	snapshotBatch     = 64 << 10
	snapshotBatchWait = 10 * time.Millisecond
)

// readSnapshot reads into p what the connection has: from br's buffer while
// it holds bytes (the start of the snapshot comes in with its header), then
// from the connection straight into p, which saves a copy of every byte
// through br's buffer.
func readSnapshot(br *bufio.Reader, c net.Conn, p []byte) (int, error) {
	if br.Buffered() > 0 {
		return br.Read(p)
	}
	return c.Read(p)
}

// outputLimitHint names the usual reason a source closes a link that began
// with a full resync: what is written while the snapshot is sent is
// buffered for the replica, and a source drops a replica whose buffer passes
// client-output-buffer-limit (Redis before 7.2 has no counter that would
// confirm it). Each retry then needs a new snapshot, which fails the same
// way while the writes go on: only the operator can end the loop.
const outputLimitHint = "if this recurs: a source drops a replica whose writes, buffered while the snapshot is sent, pass its client-output-buffer-limit replica; raise that limit on the source, whose log then says \"scheduled to be closed ASAP for overcoming of output buffer limits\""

// closedByPeer reports whether err says the peer closed the connection.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// lender is an out that lends the room to read into (spool.Spool.Buffer):
// bytes read there are written without a copy.
type lender interface{ Buffer(n int) []byte }

// minLent is the least room worth reading into: the end of a spool's chunk
// can be a few bytes, and a read into those would be a system call for
// them; own's bytes are copied into the chunk's end instead.
const minLent = 4 << 10

// room returns up to n bytes to read a frame into, at least least of them:
// lent by out when it can, else own[:n].
func (p *PSync) room(own []byte, least, n int) []byte {
	if l, ok := p.out.(lender); ok {
		if b := l.Buffer(n); len(b) >= least {
			return b
		}
	}
	return own[:n]
}

// emit writes data as one frame. When data starts at buf[frameHeader] the
// header is written in front of it and the whole goes out without a copy.
func (p *PSync) emit(kind byte, buf, data []byte) error {
	if len(data) == 0 {
		return nil
	}
	if &buf[frameHeader] != &data[0] {
		return p.frame(kind, data)
	}
	appendFrameHeader(buf[:0], kind, len(data)) // fills buf[:frameHeader] in place
	_, err := p.out.Write(buf[:frameHeader+len(data)])
	return err
}

func binaryAppendInt64(dst []byte, v int64) []byte {
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

// stream copies the command stream into the spool as it arrives, each
// chunk stamped with the time it was received.
func (p *PSync) stream(c *resp.Conn) error {
	br := c.R.Bufio()
	const head = frameHeader + 8
	own := make([]byte, head+256<<10)
	for {
		c.SetReadDeadline(time.Now().Add(p.cfg.ReadTimeout))
		buf := p.room(own, head+minLent, len(own))
		n, err := br.Read(buf[head:])
		if n > 0 {
			appendFrameHeader(buf[:0], frameStream, 8+n)
			binary.LittleEndian.PutUint64(buf[frameHeader:], uint64(time.Now().UnixNano()))
			if _, werr := p.out.Write(buf[:head+n]); werr != nil {
				return fmt.Errorf("spool: %w", werr)
			}
			p.offset += int64(n)
			off := p.offset
			p.update(func(s *Stats) { s.Received = off })
		}
		if err != nil {
			return fmt.Errorf("psync %s: stream: %w", p.cfg.Dial.Addr, err)
		}
	}
}

func (p *PSync) ackLoop(ctx context.Context) error {
	// A diskless master starts the command stream on the first ACK it gets
	// after it reaped its fork child; an ACK sent before that (ferry read the
	// snapshot's last byte first) is ignored. ACK often for a moment, so the
	// stream does not wait for the next one-second tick.
	start := time.Now()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	slow := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.ackNow:
		}
		if !slow && time.Since(start) > time.Second {
			t.Reset(time.Second)
			slow = true
		}
		if err := p.ack(); err != nil {
			return err
		}
	}
}

// ack reports the applied offset (never beyond what was received).
func (p *PSync) ack() error {
	p.mu.Lock()
	received := p.stats.Received
	p.mu.Unlock()
	off := received
	if p.cfg.Acked != nil {
		if a := p.cfg.Acked(); a > 0 && a < off {
			off = a
		}
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if p.conn == nil {
		return nil
	}
	p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := p.conn.W.Write(resp.AppendCommandStrings(nil, "REPLCONF", "ACK", strconv.FormatInt(off, 10))); err != nil {
		return err
	}
	return p.conn.W.Flush()
}

func handshakeErr(addr, step string, err error) error {
	var re *resp.ReplyError
	if errors.As(err, &re) {
		if re.Prefix() == "NOPERM" {
			return &FatalError{Err: fmt.Errorf("source %s: %s refused: %s (the user needs +replconf and +psync, or +@admin)", addr, step, re.Msg), Refused: true}
		}
		if strings.Contains(re.Msg, "unknown command") || strings.Contains(re.Msg, "not allowed") {
			return &FatalError{Err: fmt.Errorf("source %s does not allow replication (%s: %s); is REPLCONF renamed or disabled?", addr, step, re.Msg), Refused: true}
		}
		if re.Prefix() == "LOADING" {
			return fmt.Errorf("source %s: %s", addr, re.Msg)
		}
		return &FatalError{Err: fmt.Errorf("source %s: %s: %s", addr, step, re.Msg)}
	}
	return fmt.Errorf("source %s: %s: %w", addr, step, err)
}

func psyncRefused(addr, msg string) error {
	code, _, _ := strings.Cut(msg, " ")
	switch code {
	case "NOMASTERLINK", "LOADING", "MASTERDOWN":
		return fmt.Errorf("source %s cannot serve a sync right now: %s", addr, msg)
	case "NOPERM":
		return &FatalError{Err: fmt.Errorf("source %s refused PSYNC: %s (the user needs +psync and +replconf)", addr, msg), Refused: true}
	}
	if strings.Contains(msg, "unknown command") || strings.Contains(msg, "not allowed") || strings.Contains(msg, "disabled") {
		return &FatalError{Err: fmt.Errorf("source %s does not allow PSYNC (%s); it may be renamed or disabled (managed services): ferry cannot attach as a replica", addr, msg), Refused: true}
	}
	return &FatalError{Err: fmt.Errorf("source %s refused PSYNC: %s", addr, msg)}
}

// openSource opens a named connection to the source; refused credentials
// are fatal (retrying cannot help), anything else is the caller's to retry.
func openSource(ctx context.Context, d dial.Options, name string, bufSize int) (*resp.Conn, error) {
	c, err := dial.Open(ctx, d, name, bufSize)
	if err != nil {
		err = fmt.Errorf("source %w", err)
		if errors.Is(err, dial.ErrAuth) {
			return nil, &FatalError{Err: err}
		}
		return nil, err
	}
	return c, nil
}

// clip shortens what a peer sent for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
