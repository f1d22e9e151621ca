package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/hook"
	"github.com/ferry-dev/ferry/internal/notify"
)

// Cutover configures the end of a migration: once the target caught up, the
// source's masters stop taking writes, the target applies the last of them,
// and the application can be switched over with nothing lost.
type Cutover struct {
	// PauseMax is the CLIENT PAUSE duration: a ceiling, so that the source
	// resumes by itself if ferry dies in the middle.
	PauseMax time.Duration
	// Hook, if set, is run once with sh -c when the target is ready (to
	// switch the application's configuration, say), in a process group of
	// its own that is ended before the source is unpaused (package hook).
	// Its environment: PATH, HOME, FERRY_JOB, FERRY_CUTOVER_OFFSETS,
	// FERRY_CUTOVER_WAIT_MS and the variables HookEnv names.
	Hook    string
	HookEnv []string
	// HookTimeout, if > 0, ends the hook sooner than the pause would.
	HookTimeout time.Duration
	// Unpause lifts the pause on the source at the end instead of letting it
	// run out (the application now writes to the target).
	Unpause bool
	// Verify, if set, runs on the frozen data after the hook.
	Verify func(ctx context.Context) error
	// Ready is told when the target holds everything the paused source has.
	Ready func(CutoverReport)

	paused func() // tests: called once the source is paused
}

// CutoverReport says how the cutover went.
type CutoverReport struct {
	Offsets []int64       // each source master's offset when it was paused
	Wait    time.Duration // from the pause until the target had applied it all
	Paused  time.Time     // when the pause began
	Until   time.Time     // when it ends by itself (unless unpaused)
}

// ErrCutover is wrapped by every cutover failure; the source is unpaused
// when it is returned.
var ErrCutover = errors.New("cutover failed")

// cutoverLag is how close behind the source the target must be before the
// cutover pauses the source.
const cutoverLag = 256 << 10

// minPauseVersion: CLIENT PAUSE … WRITE came with Redis 6.2.
const minPauseVersion = "6.2"

// pauseSupported reports whether a redis_version has CLIENT PAUSE … WRITE.
func pauseSupported(v string) bool {
	var major, minor int
	if _, err := fmt.Sscanf(v, "%d.%d", &major, &minor); err != nil {
		return false
	}
	return major > 6 || (major == 6 && minor >= 2)
}

// checkCutover refuses a cutover the source cannot do, before anything is
// copied.
func (j *job) checkCutover(ctx context.Context, streams []*stream) error {
	for _, s := range streams {
		d, err := s.sh.Master(ctx)
		if err != nil {
			return fmt.Errorf("cutover: %w", err)
		}
		c := ctl.New(d)
		info, err := c.Info(ctx, "server").Result()
		c.Close()
		if err != nil {
			return fmt.Errorf("cutover: source %w", ctl.Describe(d.Addr, err))
		}
		if v := ctl.InfoField(info, "redis_version"); !pauseSupported(v) {
			return fmt.Errorf("cutover needs CLIENT PAUSE … WRITE (Redis %s or newer), and source %s runs Redis %s: migrate without --cutover and stop the application's writes yourself", minPauseVersion, d.Addr, v)
		}
	}
	return nil
}

// cutover runs the cutover once every stream caught up. On any failure the
// source is unpaused.
func (j *job) cutover(ctx context.Context, streams []*stream) (err error) {
	co := j.o.Cutover
	var paused []*redis.Client
	defer func() {
		unpause := err != nil || co.Unpause
		for _, c := range paused {
			if unpause {
				// Not ctx: the source must be unpaused even when the run
				// is being cancelled.
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if uerr := c.Do(uctx, "CLIENT", "UNPAUSE").Err(); uerr != nil {
					j.log.Error().Err(uerr).Str("source", c.Options().Addr).Msg("could not unpause the source; it resumes by itself when cutover_pause_max runs out")
				}
				cancel()
			}
			c.Close()
		}
		if err != nil {
			err = fmt.Errorf("%w: %w (the source was unpaused)", ErrCutover, err)
		}
	}()

	// Pause only once the target is close behind, so that the source stays
	// paused for the last few writes, not for a backlog.
	for _, s := range streams {
		for {
			// Only the target's progress closes the gap (the source's
			// only widens it): wait on the writer holding it back.
			applied, changed := s.appliedOrChange()
			if lag := s.ps.Stats().Received - applied; lag < cutoverLag {
				break
			}
			notify.Wait(ctx, changed)
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}

	// Reconnects during the cutover abort it: the moment is delicate and a
	// flapping link is reason enough to try again later.
	reconnects := j.reconnects()

	start := time.Now()
	until := start.Add(co.PauseMax)
	var offsets []int64
	ms := strconv.FormatInt(co.PauseMax.Milliseconds(), 10)
	for _, s := range streams {
		d, err := s.sh.Master(ctx)
		if err != nil {
			return err
		}
		c := ctl.New(d)
		if err := c.Do(ctx, "CLIENT", "PAUSE", ms, "WRITE").Err(); err != nil {
			c.Close()
			return fmt.Errorf("CLIENT PAUSE on source %s: %w", d.Addr, err)
		}
		paused = append(paused, c)
		j.log.Info().Str("source", d.Addr).Float64("max_s", co.PauseMax.Seconds()).Msg("cutover: source paused for writes")
	}
	if co.paused != nil {
		co.paused()
	}
	// The target must have caught up by the deadline, leaving time to run
	// the hook before the pause runs out.
	deadline := start.Add(co.PauseMax * 8 / 10)
	for i, s := range streams {
		// A scanned source has no replication offset: its reader's barrier
		// (a PING through the subscription, which the pause lets through)
		// says when every write before the pause has been read again. Read
		// from a replica, the barrier first waits for the replica to reach
		// the paused master's offset: a lagging replica must not hold the
		// cutover past the pause, so the wait has the same deadline.
		bctx, bcancel := context.WithDeadline(ctx, deadline)
		off, ok, err := s.scanBarrier(bctx)
		bcancel()
		if ok && err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("the scan reader of %s did not see every write before the pause within %s of cutover_pause_max %s: %w",
				s.ps.Stats().Addr, time.Since(start).Round(time.Millisecond), co.PauseMax, err)
		}
		if !ok {
			off, err = ctl.MasterOffset(ctx, paused[i])
		}
		if err != nil {
			return fmt.Errorf("source %s: %w", paused[i].Options().Addr, err)
		}
		offsets = append(offsets, off)
	}

	// Wait for the target.
	timeout := time.NewTimer(time.Until(deadline))
	defer timeout.Stop()
	for i, s := range streams {
		for {
			applied, changed := s.appliedOrChange()
			if applied >= offsets[i] {
				break
			}
			for _, w := range j.writers() {
				if err := w.Err(); err != nil {
					return err // a refusal: the target will not catch up
				}
			}
			if r := j.reconnects(); r != reconnects {
				return fmt.Errorf("a connection dropped during the cutover")
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("the target did not catch up with %s within %s of cutover_pause_max %s (applied %d of %d)",
					paused[i].Options().Addr, time.Since(start).Round(time.Millisecond), co.PauseMax, s.applied(), offsets[i])
			}
			// A writer's acknowledgement, or the deadline, is what can
			// change the answer; a fatal error of a writer ends ctx.
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-changed:
			case <-timeout.C: // the next round reports it
			}
		}
	}
	// A round trip on every target connection: one that died unnoticed
	// shows up as a reconnect now, not after "ready".
	cctx, ccancel := context.WithDeadline(ctx, deadline)
	for _, w := range j.writers() {
		if err := w.Confirm(cctx); err != nil {
			ccancel()
			return fmt.Errorf("target %s: %w", w.Addr(), err)
		}
	}
	ccancel()
	if r := j.reconnects(); r != reconnects {
		return fmt.Errorf("a connection dropped during the cutover")
	}
	rep := CutoverReport{Offsets: offsets, Wait: time.Since(start), Paused: start, Until: until}
	j.log.Info().Ints64("offsets", offsets).Float64("wait_s", rep.Wait.Round(time.Millisecond).Seconds()).Time("paused_until", until).Msg("cutover ready: the target holds everything the source has")
	if co.Ready != nil {
		co.Ready(rep)
	}

	if co.Hook != "" {
		// The hook must be over, its processes ended, before the pause
		// runs out by itself: once the source takes writes again, a late
		// switch of the application would lose them.
		grace := hookGrace(co.PauseMax)
		deadline, bound := until.Add(-2*grace), "cutover_pause_max "+co.PauseMax.String()
		if co.HookTimeout > 0 && time.Now().Add(co.HookTimeout).Before(deadline) {
			deadline, bound = time.Now().Add(co.HookTimeout), "cutover_hook_timeout "+co.HookTimeout.String()
		}
		hctx, cancel := context.WithDeadline(ctx, deadline)
		err := runHook(hctx, co, j.c.Name, rep, grace)
		cancel()
		if err != nil {
			if hctx.Err() == context.DeadlineExceeded && ctx.Err() == nil {
				return fmt.Errorf("%w (it must end within %s)", err, bound)
			}
			return err
		}
	}
	if co.Verify != nil {
		if err := co.Verify(ctx); err != nil {
			return fmt.Errorf("verify after cutover: %w", err)
		}
	}
	return nil
}

// reconnects counts every reconnect of the job's links so far.
func (j *job) reconnects() int64 {
	var n int64
	for _, w := range j.writers() {
		n += w.Stats().Reconnects
	}
	for _, s := range j.parts() {
		if s.ps != nil {
			n += s.ps.Stats().Reconnects
		}
	}
	return n
}

// hookGrace is the time between SIGTERM and SIGKILL for the hook's
// processes: short against the pause, at most hook.DefaultGrace.
func hookGrace(pauseMax time.Duration) time.Duration {
	return min(max(pauseMax/20, 50*time.Millisecond), hook.DefaultGrace)
}

// runHook runs the cutover hook; it returns once none of its processes is
// left.
func runHook(ctx context.Context, co *Cutover, job string, rep CutoverReport, grace time.Duration) error {
	offs := make([]string, len(rep.Offsets))
	for i, o := range rep.Offsets {
		offs[i] = strconv.FormatInt(o, 10)
	}
	return hook.Run(ctx, hook.Spec{
		Name:    "cutover_hook",
		Command: co.Hook,
		Vars: []string{
			"FERRY_JOB=" + job,
			"FERRY_CUTOVER_OFFSETS=" + strings.Join(offs, ","),
			"FERRY_CUTOVER_WAIT_MS=" + strconv.FormatInt(rep.Wait.Milliseconds(), 10),
		},
		Pass:   co.HookEnv,
		Stdout: os.Stderr,
		Stderr: os.Stderr,
		Grace:  grace,
	})
}
