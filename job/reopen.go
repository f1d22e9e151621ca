package job

import (
	"errors"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/lease"
)

// openError: an attempt could not open the target or the source. The first
// attempt of a job ends with it (a wrong address or a target that is down
// at start is the operator's to see at once); an attempt that restarts a
// running job (after a rewind or a moved home) meets the peer that caused
// the restart, perhaps still restarting, loading or failing over, and is
// tried again (reopen).
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// restartDown is what the job shows while a restarted attempt cannot open
// its peers: since when, and the last error (zero: it is not).
type restartDown struct {
	since time.Time
	err   string
}

func (j *job) setDown(d restartDown) {
	j.mu.Lock()
	j.down = d
	j.mu.Unlock()
}

// reopen paces the attempts that start a running job again while its target
// or source cannot be opened, as a writer paces its reconnects: the first
// failure is a warning, the rest debug lines; the waits double from 1 s to
// 5 s; a job meant to end gives up once the peer has been unreachable for
// timeout, a sync (timeout 0) keeps trying. Only Run's goroutine uses it.
type reopen struct {
	log     zerolog.Logger
	timeout time.Duration
	since   time.Time // the first failure of the current outage; zero if none
	wait    time.Duration
}

// The first wait is the one after a rewind: a target that just restarted
// answers within it. The longest keeps a failover's end (seconds) from
// waiting long for ferry.
const (
	reopenFirstWait = time.Second
	reopenMaxWait   = 5 * time.Second
)

// opened: an attempt opened its peers; the next failure starts a new outage.
func (r *reopen) opened() { r.since, r.wait = time.Time{}, 0 }

// failed takes a restarted attempt's error. It returns how long to wait
// before the next attempt, or ok false when err does not end in a retry:
// it is not a failure to open, it is permanent (credentials, a refused
// command, the lease held by someone else), or the outage has outlasted
// timeout — then the error to end the job with.
func (r *reopen) failed(err error, now time.Time) (wait time.Duration, ok bool, final error) {
	var oe *openError
	if !errors.As(err, &oe) || !retryable(err) {
		return 0, false, err
	}
	if r.since.IsZero() {
		r.since, r.wait = now, reopenFirstWait
		r.log.Warn().Err(err).Msg("could not open the job again after a restart; retrying")
	} else {
		r.log.Debug().Err(err).Msg("still cannot open the job again")
		r.wait = min(2*r.wait, reopenMaxWait)
	}
	down := now.Sub(r.since)
	if r.timeout > 0 {
		if down >= r.timeout {
			return 0, false, fault.PermanentErr("", "", "bring the target and the source back, or raise retry_timeout",
				fmt.Errorf("could not open the job again for %s after a restart, giving up (retry_timeout): %w", down.Round(time.Second), err))
		}
		// The last attempt comes when the timeout runs out, not after.
		return min(r.wait, r.timeout-down), true, nil
	}
	return r.wait, true, nil
}

// retryable: err may go away by itself. A permanent fault does not, nor a
// lease another process holds or took: its owner runs the job now.
func retryable(err error) bool {
	var held *lease.HeldError
	var taken *lease.TakenOverError
	if errors.As(err, &held) || errors.As(err, &taken) {
		return false
	}
	return fault.ClassOf(err) == fault.Transient
}
