// Package throttle limits the rate at which a job's writers send commands to
// the target: max_ops_per_second and max_bytes_per_second, two token buckets
// shared by every writer of the job.
//
// A writer asks before it sends a flight, for the whole flight at once. A
// request larger than a bucket's burst (a tenth of a second's worth) still
// passes: it is granted in burst-sized parts, one after the other, so the
// rate holds over any window of a few seconds whatever the flight sizes, and
// writers asking at the same time take turns part by part.
//
// Only writers wait here. Keepalives do not go through the limiter, and the
// source never waits for it: the spool absorbs what the target is not sent
// yet.
package throttle

import (
	"context"
	"fmt"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// burstPart is the share of a second's rate that a bucket holds: the most
// that goes out at once after an idle moment.
const burstPart = 10

// Limiter is the rate limit of one job. A nil *Limiter is no limit. It is
// safe for concurrent use.
type Limiter struct {
	ops, bytes *rate.Limiter // nil: that dimension is unlimited
}

// New returns a limiter of ops commands and bytes bytes per second; 0 (or
// less) leaves that dimension unlimited. Both 0: nil, no limit at all.
func New(ops int, bytes int64) *Limiter {
	if ops <= 0 && bytes <= 0 {
		return nil
	}
	l := &Limiter{}
	if ops > 0 {
		l.ops = bucket(float64(ops))
	}
	if bytes > 0 {
		l.bytes = bucket(float64(bytes))
	}
	return l
}

func bucket(perSecond float64) *rate.Limiter {
	b := math.Ceil(perSecond / burstPart)
	b = min(max(b, 1), math.MaxInt32)
	return rate.NewLimiter(rate.Limit(perSecond), int(b))
}

// Wait blocks until ops commands of bytes bytes may be sent, or ctx ends
// (then it returns ctx's error). It has the signature of
// writer.Config.Throttle. A request larger than a bucket's burst is granted
// in parts of at most a burst each, one after the other (other writers may
// be granted between two parts). A request that cannot be granted before
// ctx's deadline fails at once, as does a part whose turn would come after
// it. A cancelled part gives its tokens back; parts already granted stay
// spent.
func (l *Limiter) Wait(ctx context.Context, ops, bytes int) error {
	if l == nil {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok {
		// Even from full buckets, a request needs (n - burst) / rate.
		least := max(least(l.ops, ops), least(l.bytes, bytes))
		if time.Until(dl) < least {
			return fmt.Errorf("throttle: %d ops / %d bytes need at least %v, more than the deadline leaves: %w",
				ops, bytes, least.Round(time.Millisecond), context.DeadlineExceeded)
		}
	}
	parts := max(parts(l.ops, ops), parts(l.bytes, bytes))
	for i := range parts {
		if err := l.wait(ctx, share(ops, parts, i), share(bytes, parts, i)); err != nil {
			return err
		}
	}
	return nil
}

// least is the shortest time n tokens of lim can take.
func least(lim *rate.Limiter, n int) time.Duration {
	if lim == nil || n <= lim.Burst() {
		return 0
	}
	return time.Duration(float64(n-lim.Burst()) / float64(lim.Limit()) * float64(time.Second))
}

// parts is how many parts n tokens of lim need (0 when lim does not limit).
func parts(lim *rate.Limiter, n int) int {
	if lim == nil || n <= 0 {
		return 0
	}
	b := lim.Burst()
	return (n + b - 1) / b
}

// share is part i of n split into parts nearly equal parts (they add up to
// n, none above ceil(n/parts)).
func share(n, parts, i int) int {
	if n <= 0 {
		return 0
	}
	return int(int64(n)*int64(i+1)/int64(parts) - int64(n)*int64(i)/int64(parts))
}

// wait reserves one part in both buckets at once and sleeps until both are
// due.
func (l *Limiter) wait(ctx context.Context, ops, bytes int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := time.Now()
	var ro, rb *rate.Reservation
	var delay time.Duration
	if l.ops != nil && ops > 0 {
		ro = l.ops.ReserveN(now, ops) // OK: ops <= burst, finite limit
		delay = ro.DelayFrom(now)
	}
	if l.bytes != nil && bytes > 0 {
		rb = l.bytes.ReserveN(now, bytes)
		delay = max(delay, rb.DelayFrom(now))
	}
	if delay <= 0 {
		return nil
	}
	cancel := func() {
		t := time.Now()
		if rb != nil {
			rb.CancelAt(t)
		}
		if ro != nil {
			ro.CancelAt(t)
		}
	}
	if dl, ok := ctx.Deadline(); ok && dl.Before(now.Add(delay)) {
		cancel()
		return fmt.Errorf("throttle: %d ops / %d bytes are due in %v, after the deadline: %w", ops, bytes, delay.Round(time.Millisecond), context.DeadlineExceeded)
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		cancel()
		return ctx.Err()
	}
}

// Rates reports the configured limits (0: unlimited), for logs and status.
func (l *Limiter) Rates() (ops, bytes float64) {
	if l == nil {
		return 0, 0
	}
	if l.ops != nil {
		ops = float64(l.ops.Limit())
	}
	if l.bytes != nil {
		bytes = float64(l.bytes.Limit())
	}
	return ops, bytes
}
