package reader

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/resp"
)

// Reading a replica (read_from = "replica", ScanConfig.Master set).
//
// The pass (SCAN, DUMP, PTTL, MEMORY USAGE, the pieces of big values) and
// the re-reads go to the replica, and so does the subscription: a replica
// publishes keyspace notifications for the writes it replicates, as it
// executes them, in its master's order (the master's expirations and
// evictions reach it as DELs: "del" events, never "expired"). Its
// notify-keyspace-events is its own setting: it is checked, and set where
// CONFIG SET is allowed, on the replica. A replicated FLUSHALL/FLUSHDB, and
// the emptying of the replica when it resyncs in full, invalidate its
// tracking clients as on a master. A cluster replica is read after
// READONLY.
//
// Nothing is written on a replica (it answers READONLY). The probe that
// checks the notifications where CONFIG is unreadable writes its keys on
// the master (connection ferry-probe-<n>), then waits for the replica to
// replicate them and for their events to come through the subscription.
//
// The barrier (Barrier: a migrate is caught up, a cutover ready) must cover
// every write the master took before it, and the replica may lag. It
// reads the master's replication offset (INFO replication, on the master:
// no write, so the cutover's CLIENT PAUSE … WRITE lets it through), waits
// until the replica has processed that offset in the same history (INFO
// replication on the replica: a write's notifications are published when
// the replica executes it), then PINGs through the subscription as on a
// master: the pong comes after every notification the replica published
// before it.
//
// A session reading a replica watches it (connection ferry-monitor-<n>,
// INFO replication every second): when the replica is promoted, follows
// another master, loses its link to its master (master_link_status) or
// resyncs, the session ends with the reason and the next one resolves the
// node to read again (the best replica in sync now) and makes a new pass.

// replicaWatch is the session's view of the replica it reads.
type replicaWatch struct {
	addr   string
	master string // master_host:master_port the replica followed at the start

	mu sync.Mutex
	c  *resp.Conn
}

// replicaInfo is what INFO replication on a replica says.
type replicaInfo struct {
	role, master, link, replid string
	syncing                    bool
	offset                     int64
}

func parseReplicaInfo(info string) replicaInfo {
	f := func(name string) string { return infoField(info, name) }
	r := replicaInfo{role: f("role"), link: f("master_link_status"), replid: f("master_replid"), syncing: f("master_sync_in_progress") == "1"}
	if h := f("master_host"); h != "" {
		r.master = net.JoinHostPort(h, f("master_port"))
	}
	r.offset, _ = strconv.ParseInt(f("slave_repl_offset"), 10, 64)
	return r
}

// infoField returns field's value in an INFO reply ("" when absent).
func infoField(info, field string) string {
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// problem says why the replica can no longer be read as it was at the
// start of the session ("": it can).
func (w *replicaWatch) problem(r replicaInfo) string {
	switch {
	case r.role != "slave":
		return fmt.Sprintf("replica %s was promoted (role:%s)", w.addr, r.role)
	case r.master != w.master:
		return fmt.Sprintf("replica %s now follows %s, not %s", w.addr, r.master, w.master)
	case r.link != "up":
		return fmt.Sprintf("replica %s lost its link to its master %s (master_link_status:%s)", w.addr, w.master, r.link)
	case r.syncing:
		return fmt.Sprintf("replica %s is resyncing from its master %s", w.addr, w.master)
	}
	return ""
}

// info reads INFO replication on the replica.
func (w *replicaWatch) info() (replicaInfo, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	v, err := w.c.Do("INFO", "replication")
	if err != nil {
		return replicaInfo{}, fmt.Errorf("replica %s: INFO replication: %w", w.addr, err)
	}
	return parseReplicaInfo(string(v.Str)), nil
}

// close closes the connection (it may be in use: a call waiting on it
// fails).
func (w *replicaWatch) close() { w.c.Close() }

// watchReplica opens the session's watch of the replica it reads, which
// must be a replica in sync now.
func (s *Scan) watchReplica(ctx context.Context) (*replicaWatch, error) {
	d := s.cfg.Dial
	c, err := dial.Open(ctx, d, roleName(s.cfg.Name, "monitor"), 16<<10)
	if err != nil {
		return nil, fmt.Errorf("source %w", err)
	}
	w := &replicaWatch{addr: d.Addr, c: c}
	r, err := w.info()
	if err != nil {
		c.Close()
		return nil, err
	}
	w.master = r.master
	if p := w.problem(r); p != "" {
		c.Close()
		return nil, errors.New(p)
	}
	return w, nil
}

// watch checks the replica every second until ctx is done; it returns why
// the replica can no longer be read as it was.
func (w *replicaWatch) watch(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		r, err := w.info()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if p := w.problem(r); p != "" {
			return fmt.Errorf("%s: reading it again from the replica in sync now", p)
		}
	}
}

// roleName is the name of a connection of another role than the reader's:
// ferry-reader-0 → ferry-<role>-0.
func roleName(name, role string) string {
	if strings.Contains(name, "reader") {
		return strings.Replace(name, "reader", role, 1)
	}
	return name
}

// masterDo sends cmds to the master of the replica read, in one pipeline,
// and returns their replies (the first error reply as a *resp.ReplyError).
// The connection is opened on first use, and again after a failure.
func (s *Scan) masterDo(ctx context.Context, cmds ...[]string) ([]resp.Value, error) {
	s.mmu.Lock()
	defer s.mmu.Unlock()
	if s.mc == nil {
		d, err := s.cfg.Master(ctx)
		if err != nil {
			return nil, fmt.Errorf("source master: %w", err)
		}
		if s.mc, err = dial.Open(ctx, d, roleName(s.cfg.Name, "probe"), 16<<10); err != nil {
			return nil, fmt.Errorf("source master %w", err)
		}
		s.maddr = d.Addr
	}
	bs := make([][][]byte, 0, len(cmds))
	for _, cmd := range cmds {
		args := make([][]byte, len(cmd))
		for i, a := range cmd {
			args[i] = []byte(a)
		}
		bs = append(bs, args)
	}
	mc := s.mc
	stop := context.AfterFunc(ctx, func() { mc.SetDeadline(time.Now()) })
	vs, err := roundTrip(mc, bs...)
	stop()
	if err != nil {
		mc.Close()
		s.mc = nil
		return nil, fmt.Errorf("source master %s: %w", s.maddr, err)
	}
	for i, v := range vs {
		if v.IsError() {
			return vs, &resp.ReplyError{Cmd: strings.ToUpper(cmds[i][0]), Msg: string(v.Str)}
		}
	}
	return vs, nil
}

// closeMaster closes the connection to the master, if open.
func (s *Scan) closeMaster() {
	s.mmu.Lock()
	if s.mc != nil {
		s.mc.Close()
		s.mc = nil
	}
	s.mmu.Unlock()
}

// replicaCaughtUp waits until the replica w has processed every write its
// master took before the call (the master's replication offset now, in the
// same replication history). When ctx ends first, the error says how far
// behind the replica was (and wraps ctx.Err()).
func (s *Scan) replicaCaughtUp(ctx context.Context, w *replicaWatch) error {
	vs, err := s.masterDo(ctx, []string{"INFO", "replication"})
	if err != nil {
		return err
	}
	s.mmu.Lock()
	maddr := s.maddr
	s.mmu.Unlock()
	info := string(vs[0].Str)
	replid := infoField(info, "master_replid")
	off, err := strconv.ParseInt(infoField(info, "master_repl_offset"), 10, 64)
	if err != nil || replid == "" {
		return fmt.Errorf("source master %s: INFO replication has no master_replid or master_repl_offset", maddr)
	}
	// Redis says nothing when a replica's processed offset passes a mark
	// (WAIT counts a writer's own offset; this connection writes nothing),
	// so the replica is asked. A replica in step answers within a poll or
	// two; one that lags is asked less often, up to every 32 ms.
	delay := time.Millisecond
	t := time.NewTimer(delay)
	defer t.Stop()
	for {
		r, err := w.info()
		if err != nil {
			return err
		}
		if p := w.problem(r); p != "" {
			return errors.New(p)
		}
		if r.replid != replid {
			return fmt.Errorf("replica %s is in replication history %s, its master %s in %s", w.addr, r.replid, maddr, replid)
		}
		if r.offset >= off {
			return nil
		}
		select {
		case <-ctx.Done():
			// A cutover bounds this wait by its pause: say which node
			// held it and by how much.
			return fmt.Errorf("replica %s lags behind its master %s: it processed offset %d, the master was at %d: %w", w.addr, maddr, r.offset, off, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 32*time.Millisecond)
		t.Reset(delay)
	}
}

// readonly lets the data connection read keys on a cluster replica (a
// standalone replica refuses READONLY: it needs none).
func readonly(c *resp.Conn) error {
	if _, err := c.Do("READONLY"); err != nil {
		var re *resp.ReplyError
		if !errors.As(err, &re) {
			return err
		}
	}
	return nil
}
