// Package lease keeps one owner per job on a target.
//
// The fence makes a replay exact for one writer; two processes running the
// same job into the same target would each apply every write. So the
// process that runs a job holds a lease: a hash on the target, one per
// target master, in the job's namespace (__ferry:<job>:lease, or tagged to a
// slot of the master on a cluster), with the owner (host, pid, start), an
// epoch that grows with each new owner, the time of the last renewal and
// when the lease runs out, and the CLIENT ID of every data connection the
// owner has opened to that master (conn:<name>).
//
// Why nothing of an old owner is applied after the new owner's first write
// (the "kill and check on every connect" design; no per-transaction cost):
//
//   - A data connection writes only after Register: under WATCH of the
//     lease it checks that the epoch is still its owner's and records its
//     CLIENT ID, in one transaction.
//   - Acquire (a start that finds the lease expired, or a takeover) reads
//     the registered IDs and raises the epoch in one transaction under
//     WATCH, then CLIENT KILLs those IDs, and only then does its owner open
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
}

// Self is this process, started at started.
func Self(started time.Time) Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return Owner{ID: fmt.Sprintf("%s/%d/%d", host, pid, started.UnixNano()), Host: host, PID: pid, Started: started}
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
	i.Owner = Owner{ID: m[fOwner], Host: m[fHost], PID: int(num(fPID))}
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

// Acquire takes the lease at key for me and returns its epoch. A lease that
// is free, run out, or already me's is taken; one that another owner renews
// is refused with a *HeldError unless takeover. Taking it from another
// owner raises the epoch and kills the data connections that owner
// registered; prev is that owner (zero when there was none), unkilled the
// number of its connections that could not be killed (CLIENT ID or CLIENT
// KILL not permitted): the caller must then give the old owner lease_ttl
// to notice (its renewal does) before writing.
func Acquire(ctx context.Context, c *redis.Client, key string, me Owner, ttl time.Duration, takeover bool) (epoch int64, prev Info, unkilled int, err error) {
	for range attempts {
		var kill map[string]int64
		err = c.Watch(ctx, func(tx *redis.Tx) error {
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
				// Ours already (a new attempt of the same run): renew.
				epoch, prev, kill = cur.Epoch, Info{}, nil
				cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
					p.HSet(ctx, key, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
					return nil
				})
				return txErr(cmds, err)
			}
			if cur.Owner.ID != "" && now.Before(cur.Expires) && !takeover {
				return &HeldError{Key: key, Info: cur, Now: now}
			}
			epoch, prev, kill = cur.Epoch+1, cur, cur.Conns
			if cur.Owner.ID == "" {
				prev = Info{}
			}
			cmds, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				for name := range cur.Conns {
					p.HDel(ctx, key, connPrefix+name)
				}
				p.HSet(ctx, key, fOwner, me.ID, fHost, me.Host, fPID, me.PID, fStarted, me.Started.UnixNano(),
					fEpoch, epoch, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
				return nil
			})
			return txErr(cmds, err)
		}, key)
		if errors.Is(err, redis.TxFailedErr) {
			continue
		}
		if err != nil {
			return 0, Info{}, 0, err
		}
		for _, id := range kill {
			if id <= 0 {
				unkilled++ // registered without its ID (CLIENT ID not permitted)
				continue
			}
			// Gone already ("No such client") is as good as killed.
			if err := c.Do(ctx, "CLIENT", "KILL", "ID", strconv.FormatInt(id, 10)).Err(); isNoPerm(err) {
				unkilled++
			}
		}
		return epoch, prev, unkilled, nil
	}
	return 0, Info{}, 0, ErrContended
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
				p.HSet(ctx, key, fOwner, me.ID, fHost, me.Host, fPID, me.PID, fStarted, me.Started.UnixNano(),
					fEpoch, epoch, fRenewed, now.UnixMilli(), fExpires, now.Add(ttl).UnixMilli())
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
			args = append(args, fOwner, me.ID, fHost, me.Host, fPID, strconv.Itoa(me.PID),
				fStarted, strconv.FormatInt(me.Started.UnixNano(), 10), fEpoch, strconv.FormatInt(epoch, 10))
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
