// How a run ends: the emptiness check at its start, the sweep after a full
// resync, the drain, the caught-up wait of a migrate, the markers removed.

package job

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ferry-dev/ferry/apply"
	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/internal/notify"
	"github.com/ferry-dev/ferry/source"
	"github.com/ferry-dev/ferry/target"
)

// ErrTargetNotEmpty is wrapped by the refusal to write into a target that
// holds keys ferry did not write.
var ErrTargetNotEmpty = errors.New("target not empty")

// waitApplied waits until stream's units up to seq are submitted (the
// stream is asked to flush) and every writer acknowledged them.
func (j *job) waitApplied(ctx context.Context, i int, seq uint64) error {
	var s *stream
	for _, st := range j.parts() {
		if st.i == i {
			s = st
		}
	}
	if s == nil {
		return nil
	}
	if err := s.app.WaitFlushed(ctx, seq); err != nil {
		return err
	}
	for {
		// Wait on the first writer that still holds units up to seq: only
		// its acknowledgement can move the answer.
		var behind <-chan struct{}
		for _, w := range j.writers() {
			changed := w.Changed()
			if err := w.Err(); err != nil {
				return err
			}
			if p, ok := w.Applied(i); (!ok || p.Seq < seq) && w.Pending(i) {
				behind = changed
				break
			}
		}
		if behind == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-behind:
		}
	}
}

// checkEmpty enforces target_nonempty on a target this job never wrote to.
func (j *job) checkEmpty(ctx context.Context, nodes []*target.Node) error {
	var parts []string
	for _, n := range nodes {
		foreign, err := n.ForeignKeys(ctx)
		if err != nil {
			return err
		}
		dbs := make([]int, 0, len(foreign))
		for db := range foreign {
			dbs = append(dbs, db)
		}
		slices.Sort(dbs)
		for _, db := range dbs {
			parts = append(parts, fmt.Sprintf("%s db%d: %d keys", n.Addr.Addr, db, foreign[db]))
		}
	}
	if len(parts) == 0 {
		return nil
	}
	desc := strings.Join(parts[:min(len(parts), 4)], ", ")
	switch j.c.TargetNonempty {
	case conf.NonemptyFlush:
		j.log.Warn().Str("keys", desc).Msg("target_nonempty = flush: emptying the target (FLUSHALL)")
		for _, n := range nodes {
			if err := n.Ctl.FlushAll(ctx).Err(); err != nil {
				return fmt.Errorf("target %s: FLUSHALL: %w", n.Addr.Addr, err)
			}
		}
	case conf.NonemptyOverwrite:
		j.log.Warn().Str("keys", desc).Msg("target_nonempty = overwrite: writing over a target that already holds keys")
	default:
		return fmt.Errorf("%w: it already holds keys (%s); set target_nonempty = \"overwrite\" to write over them or \"flush\" to empty it first",
			ErrTargetNotEmpty, desc)
	}
	return nil
}

// sweep deletes the target's keys that the snapshot just applied does not
// have, on every master: for a shard of a cluster source, only keys of the
// shard's slots (the other shards' keys are theirs).
func (j *job) sweep(ctx context.Context, keep *apply.KeySet, sh *source.Shard) error {
	// A target key is the job's to delete only if some source db mapped to
	// its db copies it (a filtered-out or foreign key is left alone), and,
	// for one shard of a cluster source, if the key is in that shard.
	srcDBs := map[int][]int{}
	for db := 0; db < 256; db++ {
		t := db
		if m, ok := j.c.DBMap[db]; ok {
			t = m
		}
		srcDBs[t] = append(srcDBs[t], db)
	}
	owned := func(tdb int, key string) bool {
		if sh != nil && !sh.Owns(key) {
			return false
		}
		for _, db := range srcDBs[tdb] {
			if j.filter.Key(db, []byte(key)) {
				return true
			}
		}
		return false
	}
	var deleted int64
	for _, n := range j.tgt.Nodes() {
		d, err := n.Sweep(ctx, keep.Has, owned)
		deleted += d
		if err != nil {
			return err
		}
	}
	j.mu.Lock()
	j.sum.Swept += deleted
	j.mu.Unlock()
	j.log.Info().Int64("deleted", deleted).Msg("swept keys the new snapshot no longer has")
	return nil
}

func (j *job) drain(ctx context.Context) error {
	for _, w := range j.writers() {
		if err := w.Drain(ctx); err != nil {
			return err
		}
	}
	return nil
}

// finish ends a run. A complete one (an import, a migrate that caught up)
// flushes and acknowledges everything and removes the markers: the target
// then holds exactly the data. A stopped one only waits for what is on the
// wire: the markers record where the target stands, and what was not sent
// yet is read from the source again by the next start.
func (j *job) finish(ctx context.Context, complete bool) error {
	dctx, cancel := context.WithTimeout(ctx, j.o.drainTimeout)
	defer cancel()
	for _, s := range j.parts() {
		s.app.Sink().DropUnit()
		if err := s.app.Sink().Flush(ctx); err != nil {
			return err
		}
	}
	var err error
	if complete {
		err = j.drain(dctx)
	} else {
		// A stop applies what ferry holds if that is quick (the usual
		// case), and otherwise (a rate limit, a slow target) leaves it to
		// the next start rather than keep the operator waiting.
		qctx, qcancel := context.WithTimeout(ctx, min(j.o.drainTimeout, 10*time.Second))
		err = j.drain(qctx)
		qcancel()
		if errors.Is(err, context.DeadlineExceeded) {
			j.log.Warn().Msg("stopping without applying everything received: the rest is read from the source again on the next start")
			for _, w := range j.writers() {
				if err = w.Settle(dctx); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("in-flight writes not acknowledged within %s; the target's markers record what was applied", j.o.drainTimeout)
		}
		return err
	}
	if complete {
		if err := j.tgt.RemoveMarkers(ctx); err != nil {
			return fmt.Errorf("remove markers: %w", err)
		}
		// The target holds exactly the data: the lease goes too.
		j.lease.mu.Lock()
		j.lease.drop = true
		j.lease.mu.Unlock()
	}
	return nil
}

// caughtUp closes its channel once every stream's snapshot is live and the
// target has applied every write its shard had at that moment.
func (j *job) caughtUp(ctx context.Context, streams []*stream) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.waitCaughtUp(ctx)
			}()
		}
		wg.Wait()
		if ctx.Err() == nil {
			close(done)
		}
	}()
	return done
}

func (s *stream) waitCaughtUp(ctx context.Context) {
	select {
	case <-s.live:
	case <-ctx.Done():
		return
	}
	var target int64 = -1
	for ctx.Err() == nil {
		if target < 0 {
			if off, ok, err := s.scanBarrier(ctx); ok {
				if err == nil {
					target = off
				}
			} else if off, err := s.sourceOffset(ctx); err == nil {
				target = off
			}
		}
		if target < 0 {
			// The source did not answer: ask again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		applied, changed := s.appliedOrChange()
		if applied >= target {
			return
		}
		notify.Wait(ctx, changed)
	}
}

// sourceOffset reads the replication offset of the node the stream reads.
func (s *stream) sourceOffset(ctx context.Context) (int64, error) {
	d, err := s.sh.Resolve(ctx)
	if err != nil {
		return 0, err
	}
	c := ctl.New(d)
	defer c.Close()
	return ctl.MasterOffset(ctx, c)
}
