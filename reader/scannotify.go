package reader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// notifyClasses are the keyspace event classes the scan reader needs: every
// data type, generic commands (DEL, EXPIRE, RENAME…), expirations and
// evictions. "A" stands for all of them.
const notifyClasses = "g$lshzxet"

// notifySetting is what ferry asks users to set when it cannot.
const notifySetting = `notify-keyspace-events "KEA"`

// missingClasses returns the classes of notifyClasses that flags lacks, and
// whether flags publishes anything at all (K or E).
func missingClasses(flags string) (missing string, published bool) {
	published = strings.ContainsAny(flags, "KE")
	if strings.Contains(flags, "A") {
		return "", published
	}
	for _, c := range notifyClasses {
		if !strings.ContainsRune(flags, c) {
			missing += string(c)
		}
	}
	return missing, published
}

// dirtyKey is a key changed on the source since it was last read.
type dirtyKey struct {
	db  int
	key string
}

// maxDirty bounds the keys waiting to be re-read (about 100 bytes each
// plus the key). Past it the set is dropped and a new pass covers them.
const maxDirty = 1 << 20

// dirtySet collects what the subscriber learns: changed keys (a key changed
// many times while it waits is read once), flushes, and barriers.
type dirtySet struct {
	mu       sync.Mutex
	keys     map[dirtyKey]struct{}
	rescan   string     // why a new pass is needed ("": none)
	barriers []*barrier // every notification before them is in keys
	wake     chan struct{}
}

func newDirtySet() *dirtySet {
	return &dirtySet{keys: map[dirtyKey]struct{}{}, wake: make(chan struct{}, 1)}
}

func (d *dirtySet) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *dirtySet) add(db int, key []byte) {
	d.mu.Lock()
	if d.rescan == "" {
		d.keys[dirtyKey{db, string(key)}] = struct{}{}
		if len(d.keys) > maxDirty {
			d.rescan = fmt.Sprintf("more than %d changed keys waiting to be re-read", maxDirty)
			clear(d.keys)
		}
	}
	d.mu.Unlock()
	d.signal()
}

func (d *dirtySet) needRescan(why string) {
	d.mu.Lock()
	if d.rescan == "" {
		d.rescan = why
	}
	clear(d.keys)
	d.mu.Unlock()
	d.signal()
}

func (d *dirtySet) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.keys)
}

// take removes and returns everything collected so far.
func (d *dirtySet) take() (keys []dirtyKey, rescan string, barriers []*barrier) {
	d.mu.Lock()
	defer d.mu.Unlock()
	keys = make([]dirtyKey, 0, len(d.keys))
	for k := range d.keys {
		keys = append(keys, k)
	}
	clear(d.keys)
	rescan, barriers = d.rescan, d.barriers
	d.rescan, d.barriers = "", nil
	return keys, rescan, barriers
}

// barrier is a request to learn the stream offset by which every change the
// source made before the request is re-read and emitted.
type barrier struct {
	token string
	done  chan int64 // the offset; -1: the session ended first
}

// subscriber reads keyspace notifications (and flush invalidations) from
// one connection in subscribe mode.
type subscriber struct {
	c     *resp.Conn
	wmu   sync.Mutex
	dirty *dirtySet

	pmu     sync.Mutex
	pending map[string]*barrier
	seq     int
	probe   map[string]bool // events seen on probe keys
}

// ping sends PING token on the subscribed connection: its pong comes back
// after every notification the server queued for ferry before it.
func (s *subscriber) ping(token string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.c.W.Write(resp.AppendCommandStrings(nil, "PING", token)); err != nil {
		return err
	}
	return s.c.W.Flush()
}

// sync waits until every notification published before the call has been
// handled (the probe uses it).
func (s *subscriber) sync(ctx context.Context) error {
	b := s.newBarrier()
	if err := s.ping(b.token); err != nil {
		return err
	}
	// The pong moves b into the dirty set's barriers; wait for the move.
	for {
		s.dirty.mu.Lock()
		found := false
		for i, x := range s.dirty.barriers {
			if x == b {
				s.dirty.barriers = append(s.dirty.barriers[:i], s.dirty.barriers[i+1:]...)
				found = true
				break
			}
		}
		s.dirty.mu.Unlock()
		if found {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (s *subscriber) newBarrier() *barrier {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.seq++
	b := &barrier{token: "ferry-barrier-" + strconv.Itoa(s.seq), done: make(chan int64, 1)}
	s.pending[b.token] = b
	return b
}

// failPending ends every barrier not yet reached (the session ended).
func (s *subscriber) failPending() {
	s.pmu.Lock()
	for k, b := range s.pending {
		b.done <- -1
		delete(s.pending, k)
	}
	s.pmu.Unlock()
}

var (
	bPMessage = []byte("pmessage")
	bMessage  = []byte("message")
	bPong     = []byte("pong")
)

// keepalive PINGs the subscribed connection, so that a silent dead link
// shows up as a read timeout in run.
func (s *subscriber) keepalive(ctx context.Context) error {
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.ping("ferry-keepalive"); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("keyspace notification subscriber: %w", err)
			}
		}
	}
}

// run reads until the connection fails.
func (s *subscriber) run(ctx context.Context) error {
	for {
		s.c.SetReadDeadline(time.Now().Add(45 * time.Second))
		v, err := s.c.R.ReadValue()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("keyspace notification subscriber: %w", err)
		}
		if v.Kind != resp.Array || len(v.Elems) == 0 {
			if v.IsError() {
				return fmt.Errorf("keyspace notification subscriber: %s", v.Str)
			}
			continue
		}
		e := v.Elems
		switch {
		case bytes.Equal(e[0].Str, bPMessage) && len(e) == 4:
			s.notification(e[2].Str, e[3].Str)
		case bytes.Equal(e[0].Str, bMessage) && len(e) == 3:
			// __redis__:invalidate: a null payload is a FLUSHDB or FLUSHALL
			// somewhere on the server (tracking does not say which db).
			if e[2].Null || e[2].Kind == resp.Array && e[2].Null {
				s.dirty.needRescan("FLUSHDB/FLUSHALL on the source")
			}
		case bytes.Equal(e[0].Str, bPong) && len(e) == 2:
			s.pmu.Lock()
			b := s.pending[string(e[1].Str)]
			delete(s.pending, string(e[1].Str))
			s.pmu.Unlock()
			if b != nil {
				s.dirty.mu.Lock()
				s.dirty.barriers = append(s.dirty.barriers, b)
				s.dirty.mu.Unlock()
				s.dirty.signal()
			}
		}
	}
}

var (
	bKeyspace = []byte("__keyspace@")
	bKeyevent = []byte("__keyevent@")
	bProbe    = []byte("__ferry:probe:")
	bFlushW   = []byte("__ferry:flush-watch:")
)

// scratch reports whether key is one the scan reader itself writes on the
// source (its probes; the flush watch prefix no key has): never copied. Any
// other key under __ferry: is the user's, or another job's marker on a source
// that is itself a target, and is copied like any key.
func scratch(key []byte) bool {
	return bytes.HasPrefix(key, bProbe) || bytes.HasPrefix(key, bFlushW)
}

// notification handles one keyspace (channel __keyspace@<db>__:<key>,
// message: the event) or keyevent (channel __keyevent@<db>__:<event>,
// message: the key) notification.
func (s *subscriber) notification(channel, msg []byte) {
	var key, event []byte
	var rest []byte
	space := false
	switch {
	case bytes.HasPrefix(channel, bKeyspace):
		rest, space = channel[len(bKeyspace):], true
	case bytes.HasPrefix(channel, bKeyevent):
		rest = channel[len(bKeyevent):]
	default:
		return
	}
	i := bytes.Index(rest, []byte("__:"))
	if i <= 0 {
		return
	}
	db, err := strconv.Atoi(string(rest[:i]))
	if err != nil {
		return
	}
	if space {
		key, event = rest[i+3:], msg
	} else {
		key, event = msg, rest[i+3:]
	}
	if scratch(key) {
		if bytes.HasPrefix(key, bProbe) {
			s.pmu.Lock()
			if s.probe != nil {
				s.probe[string(event)] = true
				if space {
					s.probe[patternSpace] = true
				} else {
					s.probe[patternEvent] = true
				}
			}
			s.pmu.Unlock()
		}
		return
	}
	// A key miss (class m) is a read, not a change.
	if string(event) == "keymiss" {
		return
	}
	s.dirty.add(db, key)
}

// replyErr classifies an error reply from the source: missing permission
// and unknown (renamed, disabled) commands are permanent.
func replyErr(addr, what string, err error) error {
	var re *resp.ReplyError
	if errors.As(err, &re) {
		if re.Prefix() == "NOPERM" || strings.Contains(re.Msg, "unknown command") || strings.Contains(re.Msg, "not allowed") {
			return &FatalError{Err: fmt.Errorf("source %s: %s refused: %s (the scan reader needs SCAN, DUMP, PTTL, INFO, SELECT, PSUBSCRIBE, SUBSCRIBE and PING)", addr, what, re.Msg)}
		}
		return fmt.Errorf("source %s: %s: %s", addr, what, re.Msg)
	}
	return fmt.Errorf("source %s: %s: %w", addr, what, err)
}

// notifyConfig reads notify-keyspace-events. readable is false when CONFIG
// is renamed or forbidden.
func notifyConfig(c *resp.Conn) (flags string, readable bool, err error) {
	v, err := c.Do("CONFIG", "GET", "notify-keyspace-events")
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) {
			return "", false, nil
		}
		return "", false, err
	}
	if len(v.Elems) != 2 {
		return "", false, nil
	}
	return string(v.Elems[1].Str), true, nil
}

// probeNotifications checks, by writing short-lived keys of every type
// under __ferry:probe:, that the source publishes the notifications the
// reader needs. It is the only way to know when CONFIG is forbidden.
// Reading a replica (watch set), the keys are written on its master, and
// the probe waits for the replica to replicate them; the master's
// expiration of a key reaches the replica as a DEL ("del", not "expired").
func (sc *Scan) probeNotifications(ctx context.Context, c *resp.Conn, sub *subscriber, watch *replicaWatch, patterns []string) error {
	addr := sc.cfg.Dial.Addr
	do := func(cmd ...string) error {
		_, err := c.Do(cmd...)
		return err
	}
	if watch != nil {
		do = func(cmd ...string) error {
			_, err := sc.masterDo(ctx, cmd)
			return err
		}
	}
	sub.pmu.Lock()
	sub.probe = map[string]bool{}
	sub.pmu.Unlock()
	base := "__ferry:probe:" + sc.cfg.KeyTag + sc.replid[:8] + ":"
	k, kx := base+"k", base+"x"
	cmds := [][]string{
		{"SELECT", "0"},
		{"SET", k, "v", "PX", "60000"},
		{"DEL", k},
		{"RPUSH", k, "v"}, {"DEL", k},
		{"SADD", k, "v"}, {"DEL", k},
		{"HSET", k, "f", "v"}, {"DEL", k},
		{"ZADD", k, "1", "v"}, {"DEL", k},
		{"XADD", k, "*", "f", "v"}, {"DEL", k},
		{"SET", kx, "v", "PX", "1"},
	}
	for _, cmd := range cmds {
		if err := do(cmd...); err != nil {
			var re *resp.ReplyError
			if !errors.As(err, &re) {
				return fmt.Errorf("source %s: notification probe: %w", addr, err)
			}
			return &FatalError{Err: fmt.Errorf("source %s: notify-keyspace-events cannot be read (CONFIG is renamed or forbidden) and a probe write to check it failed (%s: %v): make sure %s is set on the source", addr, cmd[0], err, notifySetting)}
		}
	}
	// Reading the key after its 1 ms TTL makes the server expire it (and
	// publish "expired") now.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(5 * time.Millisecond):
	}
	if err := do("EXISTS", kx); err != nil {
		return replyErr(addr, "EXISTS", err)
	}
	if watch != nil {
		if err := sc.replicaCaughtUp(ctx, watch); err != nil {
			return fmt.Errorf("source %s: notification probe: %w", addr, err)
		}
	}
	if err := sub.sync(ctx); err != nil {
		return fmt.Errorf("source %s: notification probe: %w", addr, err)
	}
	sub.pmu.Lock()
	seen := sub.probe
	sub.probe = nil
	sub.pmu.Unlock()
	want := []struct{ event, class string }{
		{"set", "$"}, {"del", "g"}, {"rpush", "l"}, {"sadd", "s"}, {"hset", "h"},
		{"zadd", "z"}, {"xadd", "t"}, {"expired", "x"},
	}
	if watch != nil {
		want = want[:len(want)-1] // a replica expires nothing itself
	}
	var missing []string
	for _, w := range want {
		if !seen[w.event] {
			missing = append(missing, w.class)
		}
	}
	if len(missing) > 0 {
		return &FatalError{Err: fmt.Errorf("source %s does not publish the keyspace notifications the scan reader needs (no events of class %q; CONFIG is renamed or forbidden, so ferry cannot set them): set %s on the source (on a managed service: in its parameter group or console)", addr, strings.Join(missing, ""), notifySetting)}
	}
	// Both kinds subscribed: keep one (events carry the key as the
	// message, and one kind halves the traffic).
	sc.kind = patternEvent
	if !seen[patternEvent] {
		sc.kind = patternSpace
	}
	other := patternSpace
	if sc.kind == patternSpace {
		other = patternEvent
	}
	if len(patterns) > 1 {
		sub.wmu.Lock()
		sub.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := sub.c.W.Write(resp.AppendCommandStrings(nil, "PUNSUBSCRIBE", other))
		if err == nil {
			err = sub.c.W.Flush()
		}
		sub.wmu.Unlock()
		if err != nil {
			return fmt.Errorf("source %s: PUNSUBSCRIBE: %w", addr, err)
		}
	}
	msg := "notify-keyspace-events cannot be read (CONFIG forbidden); a probe saw every needed event class (evictions, class e, cannot be probed)"
	if watch != nil {
		msg = "notify-keyspace-events cannot be read on the replica (CONFIG forbidden); a probe written on its master saw every needed event class come through the replica (the master's expirations and evictions reach it as deletions)"
	}
	sc.cfg.Log.Info().Str("pattern", sc.kind).Msg(msg)
	return nil
}
