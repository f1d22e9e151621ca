package job

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/lease"
	"github.com/ferry-dev/ferry/resp"
	"github.com/ferry-dev/ferry/target"
	"github.com/ferry-dev/ferry/writer"
)

// The job's leases on its target (see package lease): one per target
// master, taken when the master's control connection opens — before the
// source is touched — renewed every third of lease_ttl, checked by every
// writer connection before it writes, given up when the run ends.

// leases are the leases the job holds: key → epoch, and where each is.
type leases struct {
	mu      sync.Mutex
	epoch   map[string]int64
	at      map[string]dial.Options
	renewed time.Time // the last renewal of every lease (the target's clock)
	prev    lease.Info
	drop    bool // the run is complete (markers removed): delete, not release
	used    bool // a writer sent a batch: the job may have written (noteWrites)
}

// LeaseState is the job's hold on its target, for status and metrics.
type LeaseState struct {
	Owner   lease.Owner
	Epoch   int64     // the highest over the target's masters
	Renewed time.Time // last renewal
}

// targetLease is the job's target.Leaser.
type targetLease struct{ j *job }

func (l targetLease) Acquire(ctx context.Context, n *target.Node) error {
	return l.j.acquireLease(ctx, n)
}
func (l targetLease) OnConnect(key, name string) func(*resp.Conn) error {
	return l.j.registerLease(key, name)
}

// acquireLease takes the job's lease on node n (see lease.Acquire); a lease
// held by another process is a permanent error naming it.
func (j *job) acquireLease(ctx context.Context, n *target.Node) error {
	t, err := lease.Acquire(ctx, n.Ctl, n.LeaseKey, j.owner, j.c.LeaseTTL, j.c.Takeover)
	if moved(err) {
		// The cluster's map changed between reading it and here.
		return &target.HomeMovedError{Addr: n.Addr.Addr, Key: n.LeaseKey, Err: err}
	}
	if err != nil {
		var held *lease.HeldError
		if errors.As(err, &held) {
			return fault.PermanentErr("target "+n.Addr.Addr, "", "", err)
		}
		return fmt.Errorf("target %s: lease: %w", n.Addr.Addr, ctl.Describe(n.Addr.Addr, err))
	}
	prev := t.Prev
	j.lease.mu.Lock()
	if j.lease.epoch == nil {
		j.lease.epoch, j.lease.at = map[string]int64{}, map[string]dial.Options{}
	}
	if j.lease.epoch[n.LeaseKey] != t.Epoch {
		j.log.Info().Str("key", n.LeaseKey).Int64("epoch", t.Epoch).Msg("lease taken: this process runs the job on this target")
	}
	j.lease.epoch[n.LeaseKey] = t.Epoch
	j.lease.at[n.LeaseKey] = n.Addr
	j.lease.renewed = time.Now()
	if prev.Owner.ID != "" {
		j.lease.prev = prev
	}
	j.lease.mu.Unlock()
	if prev.Owner.ID == "" {
		return nil
	}
	switch {
	case t.PrevGone:
		j.log.Warn().Str("key", n.LeaseKey).Int64("epoch", t.Epoch).Str("previous_owner", prev.Owner.Host).Int("previous_pid", prev.Owner.PID).
			Msgf("the job's previous owner, pid %d on this host (%s), is gone: its lease is taken without waiting for it to run out", prev.Owner.PID, prev.Owner.Host)
	default:
		j.log.Warn().Str("key", n.LeaseKey).Int64("epoch", t.Epoch).Str("previous_owner", prev.Owner.Host).Int("previous_pid", prev.Owner.PID).
			Int("closed", t.Closed).Bool("confirmed", t.Confirmed).
			Msg("took the job's lease over: the previous owner's connections were closed, and it stops when it next renews or connects")
	}
	if t.Unkilled == 0 {
		return nil
	}
	// Its connections stay open: its renewal, every third of lease_ttl,
	// finds the new epoch and stops it. Wait that out before writing.
	why := "CLIENT ID or CLIENT KILL not permitted"
	if t.Confirmed {
		why = "CLIENT LIST still shows them after CLIENT KILL, or their IDs are unknown"
	}
	j.log.Warn().Int("connections", t.Unkilled).Float64("wait_s", j.c.LeaseTTL.Seconds()).
		Msgf("cannot close the previous owner's connections (%s): waiting lease_ttl for it to notice the takeover", why)
	timer := time.NewTimer(j.c.LeaseTTL)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// registerLease is a writer's OnConnect: the connection may write only if
// the job still holds the lease (lease.Register).
func (j *job) registerLease(key, name string) func(c *resp.Conn) error {
	return func(c *resp.Conn) error {
		j.lease.mu.Lock()
		epoch := j.lease.epoch[key]
		j.lease.mu.Unlock()
		err := lease.Register(c, key, name, j.owner, epoch)
		if moved(err) {
			// Retried, this meets the same MOVED until the new attempt
			// the target starts once the reshard is over.
			j.homeMoved(&target.HomeMovedError{Addr: c.RemoteAddr().String(), Key: key, Err: err})
			return err
		}
		var taken *lease.TakenOverError
		if errors.As(err, &taken) {
			j.log.Warn().Str("writer", name).Str("key", key).Int64("epoch", epoch).Int64("new_epoch", taken.By.Epoch).
				Msg("writer connection refused by the lease: the job was taken over, nothing more is written")
			return &writer.FatalError{Err: fault.PermanentErr("", "", "", err)}
		}
		return err
	}
}

// renewLeases renews the leases every third of lease_ttl until ctx ends; a
// newer epoch on any of them ends the job. A lease that cannot be reached
// is tried again at the next tick: the writers report the target's state.
// The renewals use clients of their own, closed when ctx ends, so that a
// target that stopped answering cannot hold a stop.
func (j *job) renewLeases(ctx context.Context, tgt target.Target) error {
	var mu sync.Mutex
	clients := map[string]*redis.Client{} // by address
	defer context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			c.Close()
		}
		clients = nil
	})()
	client := func(o dial.Options) *redis.Client {
		mu.Lock()
		defer mu.Unlock()
		if clients == nil {
			return nil
		}
		c := clients[o.Addr]
		if c == nil {
			c = ctl.NewBounded(o, min(j.c.LeaseTTL/3, 5*time.Second))
			clients[o.Addr] = c
		}
		return c
	}
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range clients {
			c.Close()
		}
	}()
	t := time.NewTicker(j.c.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		ok := true
		for _, n := range tgt.Nodes() {
			c := client(n.Addr)
			if c == nil {
				return nil
			}
			j.lease.mu.Lock()
			epoch := j.lease.epoch[n.LeaseKey]
			j.lease.mu.Unlock()
			_, err := lease.Renew(ctx, c, n.LeaseKey, j.owner, epoch, j.c.LeaseTTL)
			var taken *lease.TakenOverError
			if errors.As(err, &taken) {
				return fault.PermanentErr("", "", "", err)
			}
			if moved(err) {
				// Left alone, the lease would run out where it is now
				// and the writer of n could not reconnect.
				hm := &target.HomeMovedError{Addr: n.Addr.Addr, Key: n.LeaseKey, Err: err}
				if !j.homeMoved(hm) {
					return hm
				}
			}
			if err != nil {
				ok = false
				if ctx.Err() != nil {
					return nil
				}
				j.log.Debug().Err(err).Str("key", n.LeaseKey).Msg("lease renewal failed; trying again")
			}
		}
		if ok {
			j.lease.mu.Lock()
			j.lease.renewed = time.Now()
			j.lease.mu.Unlock()
		}
	}
}

// moved reports whether err is a MOVED reply: the key's slot is served by
// another master now. ASK is not: a slot being migrated is still the
// master's until the migration ends, and an operation on it is tried again.
func moved(err error) bool {
	var re *resp.ReplyError
	if errors.As(err, &re) {
		return fault.Moved(re.Msg)
	}
	var rerr redis.Error
	return errors.As(err, &rerr) && fault.Moved(rerr.Error())
}

// homeMoved hands err to the current target, which starts a new attempt
// when the cluster's slot map holds still (see target.HomeMovedError). It
// reports false when the target cannot (no cluster): the caller ends the
// attempt itself.
func (j *job) homeMoved(err *target.HomeMovedError) bool {
	j.mu.Lock()
	t := j.tgt
	j.mu.Unlock()
	hm, ok := t.(interface{ HomeMoved(*target.HomeMovedError) })
	if ok {
		hm.HomeMoved(err)
	}
	return ok
}

// forgetHomes drops the lease keys of an attempt that ended because a
// master's home slot moved: the next attempt takes the leases where its
// masters' homes are now, and only those are renewed and given up.
func (j *job) forgetHomes() {
	j.lease.mu.Lock()
	defer j.lease.mu.Unlock()
	clear(j.lease.epoch)
	clear(j.lease.at)
}

// releaseLeases gives the leases up at the end of the run, so that the next
// start need not wait for them to run out.
func (j *job) releaseLeases() {
	j.lease.mu.Lock()
	// A run that never wrote (refused at start) leaves nothing behind.
	drop := j.lease.drop || !j.lease.used
	held := make(map[string]int64, len(j.lease.epoch))
	at := make(map[string]dial.Options, len(j.lease.at))
	for k, e := range j.lease.epoch {
		held[k], at[k] = e, j.lease.at[k]
	}
	j.lease.mu.Unlock()
	// In parallel, each bounded: a stop must not wait on a slow target for
	// long, and a lease not given up only delays the next start.
	var wg sync.WaitGroup
	for k, e := range held {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			c := ctl.NewBounded(at[k], 3*time.Second)
			defer c.Close()
			if err := lease.Release(ctx, c, k, e, drop); err != nil {
				j.log.Warn().Err(err).Str("key", k).Msg("could not give the lease up; the next start waits until it runs out (lease_ttl)")
			}
		})
	}
	wg.Wait()
}

// leaseState is the job's hold for State.
func (j *job) leaseState() *LeaseState {
	j.lease.mu.Lock()
	defer j.lease.mu.Unlock()
	if len(j.lease.epoch) == 0 {
		return nil
	}
	st := &LeaseState{Owner: j.owner, Renewed: j.lease.renewed}
	for _, e := range j.lease.epoch {
		st.Epoch = max(st.Epoch, e)
	}
	return st
}

// noteWrites records, at the end of an attempt, whether its writers sent
// anything: a run that never did is given up without a trace.
func (j *job) noteWrites(tgt target.Target) {
	for _, w := range tgt.Writers() {
		if st := w.Stats(); st.Batches > 0 || st.Inflight > 0 || st.Queued > 0 {
			j.lease.mu.Lock()
			j.lease.used = true
			j.lease.mu.Unlock()
			return
		}
	}
}
