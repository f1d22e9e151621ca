// Package keepalive keeps an otherwise idle connection to a Redis server open:
// Redis closes a normal client that has been idle longer than its `timeout`
// setting, and load balancers and NAT tables drop idle flows. A writer whose
// source is busy producing a long snapshot is idle from the target's point of
// view, so it pings — through the writer's own mutex, only when idle.
package keepalive

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// Bounds of the ping interval. The floor keeps a pathological timeout from
// turning keepalive into a busy loop.
const (
	MinInterval = 100 * time.Millisecond
	// Fallback is the interval when the server has no timeout (0) and the
	// configuration gives none: frequent enough for common NAT/LB idle limits
	// (AWS NLB 350 s, most NATs ≥ 60 s) at a negligible cost.
	Fallback = 30 * time.Second
)

// Interval is how long a connection may stay idle before a PING, given the
// server's `timeout` (0: none, <0: unknown) and the configured fallback.
//
// Redis closes a client once (now − lastinteraction) > timeout, both taken
// from a clock cached at up to 100 ms staleness and compared in whole seconds,
// so a client can be closed after slightly less than `timeout` of real idle
// time. Pinging after a third of the timeout leaves two thirds — at least
// 666 ms for the smallest timeout of 1 s — for the PING to be written, cross
// the network and be read, which no healthy link needs. The fallback caps the
// interval for long timeouts so that middleboxes are kept alive too.
func Interval(serverTimeout, fallback time.Duration) time.Duration {
	if fallback <= 0 {
		fallback = Fallback
	}
	if serverTimeout <= 0 {
		return fallback
	}
	iv := serverTimeout / 3
	if iv > fallback {
		iv = fallback
	}
	if iv < MinInterval {
		iv = MinInterval
	}
	return iv
}

// ErrForbidden means CONFIG GET is unavailable (renamed, ACL, managed
// service); the caller uses its configured interval.
var ErrForbidden = errors.New("CONFIG GET timeout not permitted")

// ServerTimeout asks the server for its `timeout` with CONFIG GET.
func ServerTimeout(c *resp.Conn) (time.Duration, error) {
	v, err := c.Do("CONFIG", "GET", "timeout")
	if err != nil {
		var re *resp.ReplyError
		if errors.As(err, &re) {
			return 0, ErrForbidden
		}
		return 0, err
	}
	// RESP2: ["timeout", "300"]; an empty array when the parameter is hidden.
	if len(v.Elems) < 2 {
		return 0, ErrForbidden
	}
	secs, err := strconv.ParseInt(string(v.Elems[1].Str), 10, 64)
	if err != nil || secs < 0 {
		return 0, ErrForbidden
	}
	return time.Duration(secs) * time.Second, nil
}

// Pinger is the connection owner's side. PingIfIdle sends a PING under the
// owner's connection mutex if nothing was written for at least idle; the
// owner accounts for the reply, so an unanswered PING trips its read deadline
// and marks the connection dead.
type Pinger interface {
	PingIfIdle(idle time.Duration) error
}

// Run keeps p alive until ctx is done or a ping cannot be sent.
func Run(ctx context.Context, p Pinger, interval time.Duration) error {
	// Check a few times per interval and ping once the connection has been
	// idle for interval minus one check period, so the idle time seen by the
	// server never exceeds interval.
	tick := interval / 4
	if tick < 25*time.Millisecond {
		tick = 25 * time.Millisecond
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := p.PingIfIdle(interval - tick); err != nil {
				return err
			}
		}
	}
}
