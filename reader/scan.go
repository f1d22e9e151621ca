package reader

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
	"github.com/ferry-dev/ferry/resp"
)

// Scan reads a source that does not allow PSYNC (managed services,
// Redis-compatible servers): keyspace notifications are subscribed first,
// then the keyspace is read with SCAN and pipelined DUMP + PTTL, and every
// key the notifications name afterwards is read again whole. It writes the
// same frames as PSync: each pass over the keyspace is a snapshot (a full
// resync, after which the job sweeps what the pass did not see), the
// re-reads are a command stream of RESTORE … REPLACE ABSTTL and DEL.
//
// Guarantees are per key: the target converges to the source key by key,
// with no transaction spanning keys. Pub/sub is lossy; whenever a
// notification may have been lost (the subscriber link dropped, its output
// buffer overran, a FLUSHDB/FLUSHALL, too many keys waiting) the reader makes
// a new pass.
type Scan struct {
	cfg ScanConfig
	fo  frameOut

	replid string // synthetic: never a source's, so a restart starts a new pass
	offset int64  // bytes of the synthetic stream emitted

	// oldNotify: the notify-keyspace-events to restore on exit, of each
	// node where ferry changed it (a replica read may change between
	// sessions).
	oldNotify      map[string]changedNotify
	kind           string // the pattern a probe found the source publishes
	noTracking     bool   // CLIENT TRACKING refused: flushes cannot be seen
	configReadable bool   // CONFIG GET notify-keyspace-events answered
	noFunctions    bool   // FUNCTION DUMP refused (said once)
	noSizes        bool   // MEMORY USAGE refused: every value is DUMPed whole
	noPieces       bool   // a piece command refused (said once)
	noFieldTTL     bool   // HPEXPIRETIME unknown or refused: hashes in pieces lose field TTLs
	noCmdStats     bool   // INFO commandstats refused (said once)
	// cmdBase: INFO commandstats calls of the commands no notification
	// reports, when the pass began (scancmdstats.go).
	cmdBase map[string]int64

	mu    sync.Mutex
	stats Stats
	sess  *subscriber   // the live session's subscriber, nil between sessions
	watch *replicaWatch // the live session's replica read (Master set), or nil
	live  bool          // the session finished its first pass

	// The connection to the master of the replica read (see
	// scanreplica.go), opened when first needed.
	mmu   sync.Mutex
	mc    *resp.Conn
	maddr string

	connectedOnce atomic.Bool
	sessions      atomic.Int64 // sessions that connected and subscribed
}

// ScanConfig configures a Scan reader.
type ScanConfig struct {
	Dial dial.Options
	Name string // CLIENT SETNAME of the data connection, e.g. ferry-reader-0
	// Resolve, if set, says where to connect before each session.
	Resolve func(ctx context.Context) (dial.Options, error)
	// Master, if set, says where the master of the node read is now: the
	// node read is a replica of it (read_from = "replica"; see
	// scanreplica.go).
	Master func(ctx context.Context) (dial.Options, error)
	// KeyTag is a hash tag ("{…}") that puts the probe keys in a slot of
	// the node read (cluster sources).
	KeyTag string
	// RetryTimeout: give up (a FatalError) once the source has been
	// unreachable this long; 0 = keep trying.
	RetryTimeout time.Duration
	// Count is the SCAN COUNT (default 1000).
	Count int
	// MaxBulk caps a DUMP reply, as max_bulk_len caps the replication
	// stream (default resp.DefaultMaxBulk).
	MaxBulk int64
	// BigValue: a value whose size (MEMORY USAGE) is at least this is read
	// in pieces instead of with one DUMP (see scanbig.go); 0 means
	// DefaultBigValue, < 0 DUMPs every value whole.
	BigValue int64
	Log      zerolog.Logger
}

// NewScan returns a scan reader that writes frames to out (a spool).
func NewScan(cfg ScanConfig, out io.Writer) *Scan {
	if cfg.Count <= 0 {
		cfg.Count = 1000
	}
	if cfg.BigValue == 0 {
		cfg.BigValue = DefaultBigValue
	}
	var id [20]byte
	crand.Read(id[:])
	s := &Scan{cfg: cfg, fo: frameOut{out: out}, replid: hex.EncodeToString(id[:])}
	s.stats = Stats{Addr: cfg.Dial.Addr, Mode: "scan", Phase: "connecting", ReplID: s.replid, RDBSize: -1}
	return s
}

// Stats returns a snapshot of the reader's state.
func (s *Scan) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	if s.sess != nil {
		st.Queue = int64(s.sess.dirty.len())
	}
	return st
}

func (s *Scan) update(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

// AckNow does nothing: a scan source has no replication link to ack.
func (s *Scan) AckNow() {}

// Run reads the source until ctx is done or a permanent error. Each session
// (a subscriber and a data connection) starts with a full pass; a session
// that breaks is followed by a new one, whose pass covers what the broken
// subscription may have missed.
func (s *Scan) Run(ctx context.Context, _ Start) error {
	defer s.restoreNotify()
	defer s.closeMaster()
	backoff := 100 * time.Millisecond
	why := "first pass"
	for {
		started := time.Now()
		sessions := s.sessions.Load()
		err := s.session(ctx, why)
		if ctx.Err() != nil {
			return nil
		}
		var fe *FatalError
		if errors.As(err, &fe) {
			return err
		}
		if !s.connectedOnce.Load() || fault.IsPermanent(err) {
			return &FatalError{Err: err}
		}
		if time.Since(started) > time.Minute {
			backoff = 100 * time.Millisecond
		}
		if s.sessions.Load() != sessions {
			// (A session that never got going keeps the reason of the
			// one before: a replica promoted, then none to read for a
			// while, is rescanned because it was promoted.)
			why = "the session broke (" + err.Error() + ")"
		}
		msg := err.Error()
		var downSince time.Time
		s.update(func(st *Stats) {
			st.Reconnects++
			st.LastError = msg
			st.Phase = "connecting"
			if st.DownSince.IsZero() {
				st.DownSince = time.Now()
			}
			downSince = st.DownSince
		})
		if rt := s.cfg.RetryTimeout; rt > 0 && time.Since(downSince) >= rt {
			return &FatalError{Err: fault.PermanentErr("source "+s.cfg.Dial.Addr, "", "bring the source back, or raise retry_timeout",
				fmt.Errorf("unreachable for %s, giving up (retry_timeout): %w", time.Since(downSince).Round(time.Second), err))}
		}
		d := backoff/2 + rand.N(backoff/2+1)
		s.cfg.Log.Warn().Err(err).Float64("retry_in_s", d.Round(time.Millisecond).Seconds()).Msg("scan source: notifications may have been lost; a new pass follows")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// changedNotify is a node whose notify-keyspace-events ferry changed, and
// the value it had.
type changedNotify struct {
	dial dial.Options
	old  string
}

// restoreNotify puts back the notify-keyspace-events ferry changed.
func (s *Scan) restoreNotify() {
	for addr, ch := range s.oldNotify {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial.Open(ctx, ch.dial, "", 4096)
		if err == nil {
			_, err = c.Do("CONFIG", "SET", "notify-keyspace-events", ch.old)
			c.Close()
		}
		cancel()
		if err != nil {
			s.cfg.Log.Warn().Err(err).Str("source", addr).Str("value", ch.old).Msg("could not restore notify-keyspace-events on the source")
			continue
		}
		delete(s.oldNotify, addr)
		s.cfg.Log.Info().Str("source", addr).Str("value", ch.old).Msg("restored notify-keyspace-events on the source")
	}
}

// session runs one subscriber and data connection: a pass, then re-reads.
func (s *Scan) session(ctx context.Context, why string) error {
	if s.cfg.Resolve != nil {
		d, err := s.cfg.Resolve(ctx)
		if err != nil {
			return fmt.Errorf("source: %w", err)
		}
		s.mu.Lock()
		s.cfg.Dial = d
		s.stats.Addr = d.Addr
		s.mu.Unlock()
	}
	addr := s.cfg.Dial.Addr
	s.update(func(st *Stats) { st.Phase = "connecting" })
	dc, err := openSource(ctx, s.cfg.Dial, s.cfg.Name, 1<<20)
	if err != nil {
		return err
	}
	defer dc.Close()
	// DUMP replies are values: as big as the source holds, up to the cap
	// the replication stream has too.
	lim := resp.ValueLimits()
	if s.cfg.MaxBulk > 0 {
		lim.MaxBulk = s.cfg.MaxBulk
	}
	dc.R.SetLimits(lim)
	dc.Timeout = 60 * time.Second
	var watch *replicaWatch
	if s.cfg.Master != nil {
		if watch, err = s.watchReplica(ctx); err != nil {
			return err
		}
		defer watch.close()
		if err := readonly(dc); err != nil {
			return fmt.Errorf("source %s: READONLY: %w", addr, err)
		}
		s.cfg.Log.Info().Str("replica", addr).Str("master", watch.master).Msg("scanning a replica (read_from = \"replica\")")
	}
	subc, err := dial.Open(ctx, s.cfg.Dial, subName(s.cfg.Name), 64<<10)
	if err != nil {
		return fmt.Errorf("source %w", err)
	}
	defer subc.Close()
	g, gctx := errgroup.WithContext(ctx)
	stop := context.AfterFunc(gctx, func() {
		dc.Close()
		subc.Close()
		if watch != nil {
			watch.close()
		}
	})
	defer stop()

	patterns, err := s.checkNotify(dc)
	if err != nil {
		return err
	}
	sub := &subscriber{c: subc, dirty: newDirtySet(), pending: map[string]*barrier{}}
	if patterns, err = s.subscribe(subc, patterns); err != nil {
		return err
	}
	s.connectedOnce.Store(true)
	s.sessions.Add(1)
	s.update(func(st *Stats) { st.DownSince = time.Time{} })
	s.mu.Lock()
	s.sess, s.watch, s.live = sub, watch, false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sess, s.watch, s.live = nil, nil, false
		s.mu.Unlock()
		sub.failPending()
		_, _, bs := sub.dirty.take()
		for _, b := range bs {
			b.done <- -1
		}
	}()
	g.Go(func() error { return sub.run(gctx) })
	g.Go(func() error { return sub.keepalive(gctx) })
	if watch != nil {
		g.Go(func() error { return watch.watch(gctx) })
	}
	g.Go(func() error {
		if s.kind == "" && len(patterns) > 0 && !s.configReadable {
			// CONFIG is unreadable: the probe finds out whether (and which
			// kind) the source publishes; the other subscription is
			// dropped.
			if err := s.probeNotifications(gctx, dc, sub, watch, patterns); err != nil {
				return err
			}
		}
		return s.loop(gctx, dc, sub, why)
	})
	err = g.Wait()
	if err == nil && ctx.Err() == nil {
		err = fmt.Errorf("source %s: session ended", addr)
	}
	return err
}

func subName(name string) string {
	if strings.Contains(name, "reader") {
		return strings.Replace(name, "reader", "subscriber", 1)
	}
	return name
}

// Patterns of the two kinds of keyspace notification.
const (
	patternEvent = "__keyevent@*__:*"
	patternSpace = "__keyspace@*__:*"
)

// checkNotify makes sure the source publishes the notifications needed and
// returns the patterns to subscribe to. When CONFIG cannot be read both
// kinds are subscribed and a probe decides.
func (s *Scan) checkNotify(c *resp.Conn) ([]string, error) {
	addr := s.cfg.Dial.Addr
	flags, readable, err := notifyConfig(c)
	if err != nil {
		return nil, fmt.Errorf("source %s: CONFIG GET: %w", addr, err)
	}
	s.configReadable = readable
	if !readable {
		if s.kind != "" {
			return []string{s.kind}, nil // probed in an earlier session
		}
		return []string{patternEvent, patternSpace}, nil
	}
	missing, published := missingClasses(flags)
	if missing == "" && published {
		if strings.Contains(flags, "E") {
			return []string{patternEvent}, nil
		}
		return []string{patternSpace}, nil
	}
	want := flags
	for _, c := range "EA" {
		if !strings.ContainsRune(want, c) {
			want += string(c)
		}
	}
	if _, err := c.Do("CONFIG", "SET", "notify-keyspace-events", want); err != nil {
		if !published {
			missing += " and K or E"
		}
		return nil, &FatalError{Err: fmt.Errorf("source %s: keyspace notifications are off or incomplete (notify-keyspace-events is %q, missing %q) and ferry cannot change them (%v): set %s on the source (on a managed service: in its parameter group or console)", addr, flags, missing, err, notifySetting)}
	}
	if _, ok := s.oldNotify[addr]; !ok {
		if s.oldNotify == nil {
			s.oldNotify = map[string]changedNotify{}
		}
		s.oldNotify[addr] = changedNotify{dial: s.cfg.Dial, old: flags}
	}
	s.cfg.Log.Warn().Str("was", flags).Str("now", want).Msg("set notify-keyspace-events on the source for the scan reader; it is restored on exit")
	return []string{patternEvent}, nil
}

// subscribe puts the connection in subscribe mode: keyspace notifications
// (the patterns the user's ACL allows), and (through client tracking
// redirected to itself, in broadcast mode on a prefix no key has) the
// invalidation a FLUSHDB or FLUSHALL sends, since flushes publish no
// keyspace notification.
func (s *Scan) subscribe(c *resp.Conn, patterns []string) ([]string, error) {
	addr := s.cfg.Dial.Addr
	c.Timeout = 10 * time.Second
	id, err := c.Do("CLIENT", "ID")
	if err == nil {
		_, err = c.Do("CLIENT", "TRACKING", "on", "REDIRECT", strconv.FormatInt(id.Int, 10), "BCAST", "PREFIX", string(bFlushW))
	}
	if err == nil {
		_, err = c.Do("SUBSCRIBE", "__redis__:invalidate")
	}
	if err != nil {
		var re *resp.ReplyError
		if !errors.As(err, &re) {
			return nil, fmt.Errorf("source %s: subscribe: %w", addr, err)
		}
		if !s.noTracking {
			s.noTracking = true
			s.cfg.Log.Warn().Err(err).Msg("the source refuses client tracking: a FLUSHDB/FLUSHALL on it is seen only through INFO commandstats, checked once a second")
		}
	}
	var ok []string
	var firstErr error
	for _, p := range patterns {
		if _, err := c.Do("PSUBSCRIBE", p); err != nil {
			var re *resp.ReplyError
			if !errors.As(err, &re) {
				return nil, fmt.Errorf("source %s: PSUBSCRIBE: %w", addr, err)
			}
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		ok = append(ok, p)
	}
	if len(ok) == 0 {
		return nil, replyErr(addr, "PSUBSCRIBE "+strings.Join(patterns, " "), firstErr)
	}
	c.Timeout = 0
	c.SetDeadline(time.Time{})
	return ok, nil
}

// loop makes a pass, then re-reads changed keys as they are notified,
// making a new pass whenever notifications may have been lost.
func (s *Scan) loop(ctx context.Context, c *resp.Conn, sub *subscriber, why string) error {
	for {
		if err := s.pass(ctx, c, why); err != nil {
			return err
		}
		s.mu.Lock()
		s.live = true
		s.mu.Unlock()
		s.update(func(st *Stats) { st.Phase = "streaming" })
		var last time.Time
		tick := time.NewTicker(cmdStatsEvery)
		for why = ""; why == ""; {
			check := false
			select {
			case <-ctx.Done():
				tick.Stop()
				return nil
			case <-sub.dirty.wake:
			case <-tick.C:
				check = true
			}
			// A hot key is read at most once per window: what changes
			// meanwhile waits in the set, where repeated changes of a key
			// are one entry.
			if d := time.Until(last.Add(rereadWindow)); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-ctx.Done():
					t.Stop()
					tick.Stop()
					return nil
				case <-t.C:
				}
			}
			last = time.Now()
			keys, rescan, barriers := sub.dirty.take()
			if rescan == "" && (check || len(barriers) > 0) {
				// What no notification reports is checked now and then,
				// and before a barrier is answered.
				var err error
				if rescan, err = s.checkCmdStats(c); err != nil {
					tick.Stop()
					return err
				}
			}
			if rescan != "" {
				// A pass covers every key; the barriers are answered after
				// it.
				sub.dirty.mu.Lock()
				sub.dirty.barriers = append(barriers, sub.dirty.barriers...)
				sub.dirty.mu.Unlock()
				sub.dirty.signal()
				why = rescan
				break
			}
			if err := s.reread(ctx, c, keys); err != nil {
				tick.Stop()
				return err
			}
			for _, b := range barriers {
				b.done <- s.offset
			}
			s.update(func(st *Stats) { st.Received = s.offset })
		}
		tick.Stop()
	}
}

// rereadWindow is the shortest time between two batches of re-reads.
const rereadWindow = 5 * time.Millisecond

// pass reads the whole keyspace into a snapshot.
func (s *Scan) pass(ctx context.Context, c *resp.Conn, why string) error {
	addr := s.cfg.Dial.Addr
	first := s.Stats().FullSyncs == 0
	s.update(func(st *Stats) {
		st.Phase = "scan"
		st.FullSyncs++
		if !first {
			st.Rescans++
		}
		st.ScanKeys, st.RDBReceived = 0, 0
	})
	if first {
		s.cfg.Log.Info().Str("reason", why).Msg("scanning the source (SCAN + DUMP)")
	} else {
		s.cfg.Log.Warn().Str("reason", why).Msg("re-scanning the source")
	}
	// Taken first: a SWAPDB or function change from now on is seen by
	// comparing with these counts.
	if err := s.baseCmdStats(c); err != nil {
		return err
	}
	v, err := c.Do("INFO", "keyspace")
	if err != nil {
		return replyErr(addr, "INFO keyspace", err)
	}
	dbs, total := parseKeyspace(string(v.Str))
	s.update(func(st *Stats) { st.ScanTotal = total })
	if !first {
		// A new pass starts past every position before it. A barrier
		// waiting meanwhile is answered with s.offset after the pass: the
		// target's live position from before the pass must not reach it,
		// only the end of this snapshot (applied and swept) does.
		s.offset++
	}
	if err := s.fo.control(frameFullSync, binaryAppendInt64(appendPos(nil, s.replid, s.offset), -1)); err != nil {
		return err
	}
	b := newRDBBuilder(&s.fo)
	// Function libraries travel in the snapshot as in an RDB (changes to
	// them later publish no notification: they are copied once a pass).
	if v, err := c.Do("FUNCTION", "DUMP"); err == nil && !v.Null && len(v.Str) > dumpFooter {
		if err := b.functions(v.Str); err != nil {
			return fmt.Errorf("source %s: %w", addr, err)
		}
	} else if err != nil && !s.noFunctions {
		var re *resp.ReplyError
		if !errors.As(err, &re) {
			return fmt.Errorf("source %s: FUNCTION DUMP: %w", addr, err)
		}
		s.noFunctions = true
		if !strings.Contains(re.Msg, "unknown command") {
			s.cfg.Log.Warn().Err(err).Msg("the source refuses FUNCTION DUMP: function libraries are not copied")
		}
	}
	var done int64
	var bigs []dirtyKey // read after the snapshot, into the stream
	for _, db := range dbs {
		dumpFn := func(key, payload []byte, expireMs int64) error {
			if payload == nil {
				return nil // gone since SCAN saw it; a notification follows
			}
			done++
			return b.key(db, key, expireMs, payload)
		}
		if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
			return replyErr(addr, "SELECT", err)
		}
		count := strconv.Itoa(s.cfg.Count)
		var pending [][]byte // sized, not too big: DUMPed with the next batch
		v, err := c.Do("SCAN", "0", "COUNT", count)
		for {
			if err != nil {
				return replyErr(addr, "SCAN", err)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if len(v.Elems) != 2 {
				return fmt.Errorf("source %s: unexpected SCAN reply", addr)
			}
			cursor := string(v.Elems[0].Str)
			keys := make([][]byte, 0, len(v.Elems[1].Elems))
			for _, k := range v.Elems[1].Elems {
				if !scratch(k.Str) {
					keys = append(keys, k.Str)
				}
			}
			// The next SCAN rides in the same pipeline: one round trip a
			// batch. So do the sizes of this batch's keys, and the DUMPs
			// of the previous batch's keys that were not too big.
			var next []string
			if cursor != "0" {
				next = []string{"SCAN", cursor, "COUNT", count}
			}
			var small [][]byte
			dump, size := pending, keys
			if !s.sizing() {
				dump, size = append(pending, keys...), nil
			}
			v, err = s.fetch(c, db, dump, size, next, dumpFn, func(key []byte, big bool) {
				if big {
					bigs = append(bigs, dirtyKey{db, string(key)})
				} else {
					small = append(small, key)
				}
			})
			pending = small
			if err == nil && next == nil && len(pending) > 0 {
				_, err = s.fetch(c, db, pending, nil, nil, dumpFn, nil)
				pending = nil
			}
			if err != nil && (next == nil || !isReply(err)) {
				return err
			}
			d, w := done, b.written
			s.update(func(st *Stats) { st.ScanKeys = d; st.RDBReceived = w })
			if next == nil {
				break
			}
		}
	}
	// The big keys are written in the stream that follows; the snapshot
	// names them, so that the sweep after it keeps them meanwhile.
	for _, k := range bigs {
		if err := b.keep(k.db, []byte(k.key)); err != nil {
			return err
		}
	}
	if err := b.end(); err != nil {
		return err
	}
	if len(bigs) > 0 {
		s.cfg.Log.Info().Int("keys", len(bigs)).Msg("reading big values in pieces")
		o := &cmdOut{s: s}
		sel := -1
		for _, k := range bigs {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if k.db != sel {
				if _, err := c.Do("SELECT", strconv.Itoa(k.db)); err != nil {
					return replyErr(addr, "SELECT", err)
				}
				o.buf = appendSelectCmd(o.buf, k.db)
				sel = k.db
			}
			if err := s.readBig(c, k.db, []byte(k.key), o); err != nil {
				return err
			}
			done++
			d := done
			s.update(func(st *Stats) { st.ScanKeys = d })
		}
		if err := o.flush(); err != nil {
			return err
		}
	}
	s.cfg.Log.Info().Int64("keys", done).Int("dbs", len(dbs)).Msg("pass over the source complete")
	return nil
}

// reread reads changed keys again and emits them as RESTORE (or DEL when
// they are gone), db by db; big values are read in pieces (see scanbig.go).
func (s *Scan) reread(ctx context.Context, c *resp.Conn, keys []dirtyKey) error {
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, func(a, b dirtyKey) int { return a.db - b.db })
	o := &cmdOut{s: s}
	emit := func(key, payload []byte, expireMs int64) error {
		if payload == nil {
			o.buf = appendDelCmd(o.buf, key)
		} else {
			o.buf = appendRestoreCmd(o.buf, key, expireMs, payload)
		}
		return o.maybeFlush()
	}
	for i := 0; i < len(keys); {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		db := keys[i].db
		j := i
		for j < len(keys) && keys[j].db == db && j-i < 256 {
			j++
		}
		batch := make([][]byte, 0, j-i)
		for _, k := range keys[i:j] {
			batch = append(batch, []byte(k.key))
		}
		i = j
		if _, err := c.Do("SELECT", strconv.Itoa(db)); err != nil {
			return replyErr(s.cfg.Dial.Addr, "SELECT", err)
		}
		o.buf = appendSelectCmd(o.buf, db)
		var bigs [][]byte
		if s.sizing() {
			// One round trip sizes the batch, the next DUMPs what is not
			// too big.
			var small [][]byte
			if _, err := s.fetch(c, db, nil, batch, nil, nil, func(key []byte, big bool) {
				if big {
					bigs = append(bigs, key)
				} else {
					small = append(small, key)
				}
			}); err != nil {
				return err
			}
			batch = small
		}
		if _, err := s.fetch(c, db, batch, nil, nil, emit, nil); err != nil {
			return err
		}
		for _, k := range bigs {
			if err := s.readBig(c, db, k, o); err != nil {
				return err
			}
		}
		if err := o.flush(); err != nil {
			return err
		}
	}
	return nil
}

// sizing reports whether keys are sized before they are DUMPed.
func (s *Scan) sizing() bool { return s.cfg.BigValue > 0 && !s.noSizes }

// fetch reads keys of the selected db in one pipeline: DUMP and PTTL of the
// keys of dump, calling fn for each in order, with a nil payload for a key
// that is gone; MEMORY USAGE of the keys of size, calling sized with
// whether the value is too big to DUMP (see scanbig.go). Only one payload is
// held at a time. A tail command, if given, is sent after them and its
// reply returned (an error reply as a *resp.ReplyError).
func (s *Scan) fetch(c *resp.Conn, db int, dump, size [][]byte, tail []string, fn func(key, payload []byte, expireMs int64) error, sized func(key []byte, big bool)) (resp.Value, error) {
	if len(dump) == 0 && len(size) == 0 && tail == nil {
		return resp.Value{}, nil
	}
	addr := s.cfg.Dial.Addr
	var out []byte
	for _, k := range dump {
		out = resp.AppendCommand(out, bDumpCmd, k)
		out = resp.AppendCommand(out, bPTTLCmd, k)
	}
	for _, k := range size {
		out = resp.AppendCommand(out, bMemoryCmd, bUsageArg, k)
	}
	if tail != nil {
		out = resp.AppendCommandStrings(out, tail...)
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	defer c.SetDeadline(time.Time{})
	if _, err := c.W.Write(out); err != nil {
		return resp.Value{}, fmt.Errorf("source %s: %w", addr, err)
	}
	if err := c.W.Flush(); err != nil {
		return resp.Value{}, fmt.Errorf("source %s: %w", addr, err)
	}
	var firstErr error
	for _, k := range dump {
		dump, err := c.R.ReadValue()
		if err != nil {
			return resp.Value{}, fmt.Errorf("source %s: DUMP: %w", addr, err)
		}
		ttl, err := c.R.ReadValue()
		if err != nil {
			return resp.Value{}, fmt.Errorf("source %s: PTTL: %w", addr, err)
		}
		now := time.Now().UnixMilli()
		if firstErr != nil {
			continue // the pipeline's replies must still be read
		}
		if dump.IsError() {
			firstErr = replyErr(addr, fmt.Sprintf("DUMP of db %d key %q", db, clipKey(k)), &resp.ReplyError{Cmd: "DUMP", Msg: string(dump.Str)})
			continue
		}
		if ttl.IsError() {
			firstErr = replyErr(addr, "PTTL", &resp.ReplyError{Cmd: "PTTL", Msg: string(ttl.Str)})
			continue
		}
		var payload []byte
		var exp int64
		if !dump.Null && ttl.Int != -2 {
			payload = dump.Str
			if ttl.Int >= 0 {
				exp = now + ttl.Int
			}
		}
		if err := fn(k, payload, exp); err != nil {
			firstErr = err
		}
	}
	for _, k := range size {
		v, err := c.R.ReadValue()
		if err != nil {
			return resp.Value{}, fmt.Errorf("source %s: MEMORY USAGE: %w", addr, err)
		}
		if v.Kind != resp.Integer && !v.Null && !s.noSizes {
			// Refused (ACL, renamed) or not understood (a compatible
			// server): values are DUMPed whole, as without sizing.
			s.noSizes = true
			s.cfg.Log.Warn().Str("reply", clip(v.Text())).Msg("the source does not answer MEMORY USAGE: every value is read with one DUMP, however big")
		}
		sized(k, v.Kind == resp.Integer && v.Int >= s.cfg.BigValue)
	}
	var v resp.Value
	if tail != nil {
		var err error
		if v, err = c.R.ReadValue(); err != nil {
			return resp.Value{}, fmt.Errorf("source %s: %s: %w", addr, tail[0], err)
		}
		if v.IsError() && firstErr == nil {
			firstErr = &resp.ReplyError{Cmd: tail[0], Msg: string(v.Str)}
		}
	}
	return v, firstErr
}

var (
	bDumpCmd   = []byte("DUMP")
	bPTTLCmd   = []byte("PTTL")
	bMemoryCmd = []byte("MEMORY")
	bUsageArg  = []byte("USAGE")
)

// isReply reports whether err is an error reply to the tail command of a
// fetch (the keys' own errors are wrapped by replyErr).
func isReply(err error) bool {
	_, ok := err.(*resp.ReplyError)
	return ok
}

// parseKeyspace returns the dbs that hold keys (INFO keyspace) and the
// number of keys in all.
func parseKeyspace(info string) ([]int, int64) {
	var dbs []int
	var total int64
	for _, line := range strings.Split(info, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "db")
		if !ok {
			continue
		}
		n, stats, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		db, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "keys="); ok {
				k, _ := strconv.ParseInt(v, 10, 64)
				if k > 0 {
					dbs = append(dbs, db)
					total += k
				}
			}
		}
	}
	slices.Sort(dbs)
	return dbs, total
}

// Barrier returns a stream offset by which every change the source made
// before the call has been read again and emitted: once the target applied
// that offset, it holds every such change. It waits for the first pass.
// Reading a replica, it first waits for the replica to catch up with the
// master (see scanreplica.go); when ctx ends during that wait, the error
// names the replica and its lag.
func (s *Scan) Barrier(ctx context.Context) (int64, error) {
	for {
		s.mu.Lock()
		sub, watch, live := s.sess, s.watch, s.live
		s.mu.Unlock()
		if sub != nil && live && watch != nil {
			if err := s.replicaCaughtUp(ctx, watch); err != nil {
				if ctx.Err() != nil {
					return 0, err // names the lagging replica
				}
				s.cfg.Log.Debug().Err(err).Msg("barrier: the replica has not caught up with its master; trying again")
				live = false // the session is likely ending: try again
			}
		}
		if sub != nil && live {
			b := sub.newBarrier()
			if err := sub.ping(b.token); err == nil {
				select {
				case <-ctx.Done():
					return 0, ctx.Err()
				case off := <-b.done:
					if off >= 0 {
						return off, nil
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
