// Package lease keeps one owner per job on a target.
//
// The fence makes a replay exact for one writer; two processes running the
// same job into the same target would each apply every write. So the
// process that runs a job holds a lease: a hash on the target, one per
// target master, in the job's namespace (__ferry:<job>:lease, or tagged to a
// slot of the master on a cluster), with the owner (host, pid, start; and
// the kernel's boot ID, the pid namespace and the process's start in clock
// ticks, which tell whether it still runs), an epoch that grows with each
// new owner, the time of the last renewal and when the lease runs out, and
// the CLIENT ID of every data connection the owner has opened to that
// master (conn:<name>).
//
// A live lease is taken only with takeover, or when its owner ran on this
// machine and no longer runs (see gone): a restart after a crash on the same
// machine does not wait for the lease to run out.
//
// Why nothing of an old owner is applied after the new owner's first write
// (the "kill and check on every connect" design; no per-transaction cost):
//
//   - A data connection writes only after Register: under WATCH of the
//     lease it checks that the epoch is still its owner's and records its
//     CLIENT ID, in one transaction.
//   - Acquire (a start that finds the lease expired, or a takeover) reads
//     the registered IDs and raises the epoch in one transaction under
//     WATCH, then CLIENT KILLs those IDs and checks with CLIENT LIST that
//     none is left (else its owner waits lease_ttl, as when the kill is not
//     permitted), and only then does its owner open
//     its own data connections. A connection registered before that
//     transaction is killed: the server runs nothing more from it once the
//     kill returns (what it had run is before the new owner's first write).
//     One that registers after it sees the new epoch and is refused. A
//     Register that races the transaction makes one of the two EXECs fail
//     (WATCH), and it is tried again.
//
// So the data path is covered even when the old owner is alive and its
// connection open. What it does not cover: the old owner's control
// connections (go-redis pools reconnect by themselves), which write only
// probes, the sweep of a full resync and the removal of markers at the end
// of a migrate; the old owner's renewal, every third of the lease's time,
// finds the new epoch and stops it.
//
// Times are the target's (TIME), so that two hosts whose clocks differ agree
// on when a lease runs out.
package lease

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/resp"
)

// Owner is a process that runs a job.
type Owner struct {
	ID      string // host/pid/start: unique per process
	Host    string
	PID     int
	Started time.Time
	// Where the process runs, so that a start on the same machine can tell
	// whether the owner still runs (see gone): the kernel's boot ID, the
	// pid namespace, and when the process started in clock ticks since
	// boot. Empty where /proc does not say them, and in a lease written by
	// an older ferry.
	Boot  string
	PIDNS string
	Ticks uint64
}

// Self is this process, started at started.
func Self(started time.Time) Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	boot, pidns := machine()
	ticks, _ := procStart(pid)
	return Owner{ID: fmt.Sprintf("%s/%d/%d", host, pid, started.UnixNano()), Host: host, PID: pid, Started: started,
		Boot: boot, PIDNS: pidns, Ticks: ticks}
}

// fields are the lease's fields that name o.
func (o Owner) fields() []string {
	return []string{fOwner, o.ID, fHost, o.Host, fPID, strconv.Itoa(o.PID), fStarted, strconv.FormatInt(o.Started.UnixNano(), 10),
		fBoot, o.Boot, fPIDNS, o.PIDNS, fTicks, strconv.FormatUint(o.Ticks, 10)}
}

// hset is HSET key with o's fields and then more (field, value pairs).
func (o Owner) hset(ctx context.Context, p redis.Pipeliner, key string, more ...any) {
	args := make([]any, 0, 14+len(more))
	for _, f := range o.fields() {
		args = append(args, f)
	}
	p.HSet(ctx, key, append(args, more...)...)
}

// gone reports whether o, the owner of a live lease, is a process of this
// machine that no longer runs: then me need not wait for its lease to run
// out, nor take it over.
//
// The host name alone does not tell a machine (two containers or cloned VMs
// may bear the same name), and a pid means something only in its pid
// namespace; so o must have run under the same kernel (boot ID) and in the
// same pid namespace as me. Then o is gone if its pid runs no process, or a
// zombie, or one that started at another time than o did: the pid was
// reused (the start time, not the command line, tells: another ferry may
// have reused the pid, and one with the same pid and start time is the same
// process). Anything else — another host, another pid namespace (a
// container restarted with a pid namespace of its own), a lease of an older
// ferry without these fields, no /proc — is an owner alive until its lease
// runs out, as before.
func gone(o, me Owner) bool {
	if o.Host == "" || o.Host != me.Host || o.Boot == "" || o.Boot != me.Boot ||
		o.PIDNS == "" || o.PIDNS != me.PIDNS || o.Ticks == 0 {
		return false
	}
	ticks, runs := procStart(o.PID)
	return !runs || ticks != o.Ticks
}

// Info is what a lease holds.
type Info struct {
	Owner   Owner
	Epoch   int64
	Renewed time.Time        // last renewal (the target's clock)
	Expires time.Time        // when it runs out without renewal
	Conns   map[string]int64 // data connection name → CLIENT ID
}

func (i Info) describe() string {
	s := fmt.Sprintf("%s (pid %d, started %s", i.Owner.Host, i.Owner.PID, i.Owner.Started.UTC().Format(time.RFC3339))
	if !i.Renewed.IsZero() {
		s += ", last renewed " + i.Renewed.UTC().Format(time.RFC3339)
	}
	return s + ")"
}

// HeldError: another process holds the job's lease.
type HeldError struct {
	Key  string
	Info Info
	Now  time.Time // the target's
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the job is running elsewhere: %s holds its lease on the target (%s, epoch %d, runs out in %s without renewal); "+
		"stop it first, or start with --takeover (takeover = true) to take the job over",
		e.Info.describe(), e.Key, e.Info.Epoch, e.Info.Expires.Sub(e.Now).Round(time.Second))
}

// TakenOverError: a newer owner took the job over.
type TakenOverError struct {
	Key string
	By  Info
}

func (e *TakenOverError) Error() string {
	if e.By.Owner.ID == "" {
		return fmt.Sprintf("job taken over: its lease on the target (%s) has a newer epoch %d", e.Key, e.By.Epoch)
	}
	return fmt.Sprintf("job taken over by %s (epoch %d); this process stops without writing again", e.By.describe(), e.By.Epoch)
}

// ErrContended: the lease kept changing while it was being read (WATCH).
var ErrContended = errors.New("lease: changed while being taken, too often")

const (
	fOwner, fHost, fPID, fStarted = "owner", "host", "pid", "started"
	fBoot, fPIDNS, fTicks         = "boot", "pidns", "ticks"
	fEpoch, fRenewed, fExpires    = "epoch", "renewed", "expires"
	connPrefix                    = "conn:"
	attempts                      = 10
)

func parse(m map[string]string) Info {
	num := func(k string) int64 { n, _ := strconv.ParseInt(m[k], 10, 64); return n }
	ms := func(k string) time.Time {
		if n := num(k); n > 0 {
			return time.UnixMilli(n)
		}
		return time.Time{}
	}
	i := Info{Epoch: num(fEpoch), Renewed: ms(fRenewed), Expires: ms(fExpires), Conns: map[string]int64{}}
	i.Owner = Owner{ID: m[fOwner], Host: m[fHost], PID: int(num(fPID)), Boot: m[fBoot], PIDNS: m[fPIDNS]}
	i.Owner.Ticks, _ = strconv.ParseUint(m[fTicks], 10, 64)
	if n := num(fStarted); n > 0 {
		i.Owner.Started = time.Unix(0, n)
	}
	for k, v := range m {
		if name, ok := strings.CutPrefix(k, connPrefix); ok {
			id, _ := strconv.ParseInt(v, 10, 64)
			i.Conns[name] = id
		}
	}
	return i
}

// Read returns the lease at key (zero Info when there is none).
func Read(ctx context.Context, c redis.Cmdable, key string) (Info, error) {
	m, err := c.HGetAll(ctx, key).Result()
	if err != nil {
		return Info{}, err
	}
	return parse(m), nil
}

// serverNow is the target's clock, or this host's where TIME is not
// permitted (a restricted ACL user): then the hosts' clocks must agree.
func serverNow(ctx context.Context, c redis.Cmdable) (time.Time, error) {
	t, err := c.Time(ctx).Result()
	if err != nil && !isNoPerm(err) {
		return time.Time{}, err
	}
	if err != nil {
		return time.Now(), nil
	}
	return t, nil
}

func isNoPerm(err error) bool { return err != nil && strings.Contains(err.Error(), "NOPERM") }

// txErr is the error of a transaction: the refusal of the command that
// made EXEC abort (a NOPERM names it), else err.
func txErr(cmds []redis.Cmder, err error) error {
	if err == nil || errors.Is(err, redis.TxFailedErr) {
		return err
	}
	for _, c := range cmds {
		if e := c.Err(); e != nil && !strings.Contains(e.Error(), "EXECABORT") {
			return fmt.Errorf("%s: %w", c.Name(), e)
		}
	}
	return err
}

// Taken is what Acquire did.
type Taken struct {
	Epoch int64
	// Prev is the owner the lease was taken from (zero when it was free or
	// already this process's).
	Prev Info
	// PrevGone: Prev's lease was live, but Prev ran on this machine and no
	// longer runs (see gone): taken without takeover and without waiting.
	PrevGone bool
	// Closed counts Prev's registered data connections that are closed:
	// killed, or gone already. Unkilled counts those that may still be
	// open: registered without their ID (CLIENT ID not permitted), CLIENT
	// KILL refused, or still listed by CLIENT LIST after the kill. The
	// caller must then give Prev lease_ttl to notice (its renewal does)
	// before writing.
	Closed, Unkilled int
	// Confirmed: CLIENT LIST showed which connections were left; else
	// (not permitted) Closed is what CLIENT KILL answered.
	Confirmed bool
}

// Acquire takes the lease at key for me. A lease that is free, run out, or
// already me's is taken; so is one whose owner ran on this machine and no
// longer runs (see gone). One that another owner renews is refused with a
// *HeldError unless takeover. Taking it from another owner raises the epoch
// and kills the data connections that owner registered, then checks with
// CLIENT LIST that none of them is left (see closeConns).
func Acquire(ctx context.Context, c *redis.Client, key string, me Owner, ttl time.Duration, takeover bool) (Taken, error) {
	for range attempts {
		var t Taken
		var kill map[string]int64
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			m, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return err
			}
			cur := parse(m)
			now, err := serverNow(ctx, tx)
			if err != nil {
				return err
			}
			if cur.Owner.ID == me.ID && cur.Epoch > 0 {
				// Ours already (a new attempt of the same run): renew. The
				// connections it lists are the last attempt's, all closed,
				// and some may have been registered on another master (a
				// lease moves with its slot when a cluster is resharded):
				// they are dropped, so that no takeover kills those IDs
				// here, where they may name someone else's connections.
				t, kill = Taken{Epoch: cur.Epoch}, nil
				cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					for name := range cur.Conns {
						p.HDel(ctx, key, connPrefix+name)
					}
					p.HSet(ctx, key, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
					return nil
				})
				return txErr(cmds, err)
			}
			t = Taken{Epoch: cur.Epoch + 1, Prev: cur}
			if cur.Owner.ID != "" && now.Before(cur.Expires) {
				t.PrevGone = gone(cur.Owner, me)
				if !t.PrevGone && !takeover {
					return &HeldError{Key: key, Info: cur, Now: now}
				}
			}
			kill = cur.Conns
			if cur.Owner.ID == "" {
				t.Prev = Info{}
			}
			cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for name := range cur.Conns {
					p.HDel(ctx, key, connPrefix+name)
				}
				me.hset(ctx, p, key, fEpoch, t.Epoch, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
				return nil
			})
			return txErr(cmds, err)
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return Taken{}, err
		}
		t.Closed, t.Unkilled, t.Confirmed = closeConns(ctx, c, kill)
		return t, nil
	}
	return Taken{}, ErrContended
}

// closeConns kills the data connections conns (name → CLIENT ID) of an old
// owner and returns how many are closed and how many may still be open.
//
// Those are all the connections of the old owner that may write: a
// connection writes only after Register, and a Register that ran before
// Acquire's transaction is in the lease Acquire read (the two transactions
// WATCH the same key), one after it is refused. So what is left to check
// is that the kills took: CLIENT KILL may be refused (NOPERM, a renamed or
// proxied command) or answer without closing. CLIENT LIST tells: the ids
// still listed, save those the server closes as soon as it can (flag A: it
// runs nothing more from them), are left; it is asked again for up to a
// second while a connection whose kill was answered is still listed. Where
// CLIENT LIST is not permitted, CLIENT KILL's answer counts.
//
// An ID that CLIENT LIST shows under another name than the one it was
// registered with is not killed: the IDs a lease lists may not be this
// server's (a lease moves with its slot when a cluster is resharded, and
// IDs start again at a restart), and one that names someone else's
// connection here stands for a connection that is gone. One without a name
// is killed: ferry's own are unnamed where CLIENT SETNAME is refused.
func closeConns(ctx context.Context, c *redis.Client, conns map[string]int64) (closed, unkilled int, confirmed bool) {
	names, lerr := clientNames(ctx, c)
	refused := map[int64]bool{}
	var ids []int64
	for name, id := range conns {
		if id <= 0 {
			unkilled++ // registered without its ID (CLIENT ID not permitted)
			continue
		}
		if listedAs, ok := names[id]; lerr == nil && (!ok || listedAs != "" && listedAs != name) {
			closed++ // gone: not listed, or its ID is someone else's now
			continue
		}
		ids = append(ids, id)
		// An integer: how many were closed, 0 when gone already.
		if err := c.Do(ctx, "CLIENT", "KILL", "ID", strconv.FormatInt(id, 10)).Err(); err != nil {
			refused[id] = true
		}
	}
	if len(ids) == 0 {
		return closed, unkilled, lerr == nil && closed > 0
	}
	deadline := time.Now().Add(time.Second)
	for {
		left, err := listed(ctx, c, ids)
		if err != nil {
			return closed + len(ids) - len(refused), unkilled + len(refused), false
		}
		waiting := false
		for _, id := range left {
			waiting = waiting || !refused[id]
		}
		if !waiting || time.Now().After(deadline) {
			return closed + len(ids) - len(left), unkilled + len(left), true
		}
		select {
		case <-ctx.Done():
			return closed + len(ids) - len(left), unkilled + len(left), true
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// clientNames maps the IDs of the connections CLIENT LIST shows to their
// names.
func clientNames(ctx context.Context, c *redis.Client) (map[int64]string, error) {
	cs, err := clientList(ctx, c)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(cs))
	for _, cl := range cs {
		names[cl.id] = cl.name
	}
	return names, nil
}

// listed returns those of ids that CLIENT LIST shows open and not being
// closed.
func listed(ctx context.Context, c *redis.Client, ids []int64) ([]int64, error) {
	cs, err := clientList(ctx, c)
	if err != nil {
		return nil, err
	}
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	var left []int64
	for _, cl := range cs {
		if want[cl.id] && !cl.closing {
			left = append(left, cl.id)
		}
	}
	return left, nil
}

// client is a connection as CLIENT LIST shows it.
type client struct {
	id      int64
	name    string
	closing bool // flag A: the server runs nothing more from it
}

func clientList(ctx context.Context, c *redis.Client) ([]client, error) {
	txt, err := c.Do(ctx, "CLIENT", "LIST").Text()
	if err != nil {
		return nil, err
	}
	var out []client
	for line := range strings.Lines(txt) {
		var cl client
		for _, f := range strings.Fields(line) {
			k, v, _ := strings.Cut(f, "=")
			switch k {
			case "id":
				cl.id, _ = strconv.ParseInt(v, 10, 64)
			case "name":
				cl.name = v
			case "flags":
				cl.closing = strings.Contains(v, "A")
			}
		}
		out = append(out, cl)
	}
	return out, nil
}

// Renew extends the lease if it still has epoch; a newer epoch is a
// *TakenOverError. A lease that has vanished (the target was flushed) is
// written again for me.
func Renew(ctx context.Context, c *redis.Client, key string, me Owner, epoch int64, ttl time.Duration) (time.Time, error) {
	for range attempts {
		var renewed time.Time
		err := c.Watch(ctx, func(tx *redis.Tx) error {
			m, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return err
			}
			cur := parse(m)
			if cur.Epoch != 0 && cur.Epoch != epoch {
				return &TakenOverError{Key: key, By: cur}
			}
			now, err := serverNow(ctx, tx)
			if err != nil {
				return err
			}
			cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				me.hset(ctx, p, key, fEpoch, epoch, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
				return nil
			})
			renewed = now
			return txErr(cmds, err)
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		return renewed, err
	}
	return time.Time{}, ErrContended
}

// Release gives the lease up if it still has epoch, so that the next start
// need not wait for it to run out. The epoch stays: epochs only grow —
// unless drop (a migrate that is complete and leaves the target holding
// exactly the data, its markers gone): then the key goes.
func Release(ctx context.Context, c *redis.Client, key string, epoch int64, drop bool) error {
	// A writer connection may register (HSET conn:<name>) between the
	// WATCH and the EXEC: look again, until ctx ends (the caller bounds how
	// long a stop may spend giving its leases up).
	for {
		err := release(ctx, c, key, epoch, drop)
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
		if ctx.Err() != nil {
			return ErrContended
		}
	}
}

func release(ctx context.Context, c *redis.Client, key string, epoch int64, drop bool) error {
	return c.Watch(ctx, func(tx *redis.Tx) error {
		m, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		cur := parse(m)
		if cur.Epoch != epoch {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if drop {
				p.Del(ctx, key)
				return nil
			}
			p.HSet(ctx, key, fOwner, "", fExpires, 0)
			for name := range cur.Conns {
				p.HDel(ctx, key, connPrefix+name)
			}
			return nil
		})
		return err
	}, key)
}

// Register records, on a data connection about to write, that it belongs to
// the owner of epoch: under WATCH it checks the epoch and stores its CLIENT
// ID as conn:<name>. A newer epoch is a *TakenOverError: the connection must
// not write. A missing lease (a new master of a cluster target, a flushed
// target) is created for me. The connection must have the lease's db
// selected.
func Register(c *resp.Conn, key, name string, me Owner, epoch int64) error {
	id := "0" // unknown: a takeover then waits lease_ttl instead of killing
	if idv, err := c.Do("CLIENT", "ID"); err == nil {
		id = idv.Text()
	} else if !isNoPerm(err) {
		return fmt.Errorf("lease: CLIENT ID: %w", err)
	}
	for range attempts {
		if _, err := c.Do("WATCH", key); err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		v, err := c.Do("HGETALL", key)
		if err != nil {
			c.Do("UNWATCH")
			return fmt.Errorf("lease: %w", err)
		}
		m := map[string]string{}
		for i := 0; i+1 < len(v.Elems); i += 2 {
			m[v.Elems[i].Text()] = v.Elems[i+1].Text()
		}
		cur := parse(m)
		if cur.Epoch != 0 && cur.Epoch != epoch {
			c.Do("UNWATCH")
			return &TakenOverError{Key: key, By: cur}
		}
		args := []string{"HSET", key, connPrefix + name, id}
		if cur.Epoch == 0 {
			args = append(append(args, me.fields()...), fEpoch, strconv.FormatInt(epoch, 10))
		}
		if _, err := c.Do("MULTI"); err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		if _, err := c.Do(args...); err != nil {
			c.Do("DISCARD")
			return fmt.Errorf("lease: %w", err)
		}
		res, err := c.Do("EXEC")
		if err != nil {
			return fmt.Errorf("lease: %w", err)
		}
		if !res.Null {
			return nil
		}
		// The lease changed between WATCH and EXEC: look again.
	}
	return ErrContended
}
