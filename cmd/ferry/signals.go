package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopGrace is how long past stop_timeout the process may take to report
// before it exits regardless: the job itself gives up at stop_timeout.
const stopGrace = 5 * time.Second

// exitNow ends the process (a variable for tests).
var exitNow = os.Exit

// signalContext is cancelled by the first SIGINT or SIGTERM: the job stops
// gracefully, within stopTimeout. A second signal exits at once, and so does
// a process still running stopTimeout (plus a grace) after the first: a stop
// is bounded whatever the peers do. Both say so in a last line and exit 1.
// release stops listening.
func signalContext(stderr io.Writer, stopTimeout time.Duration) (ctx context.Context, release func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
		case <-done:
			return
		}
		cancel()
		backstop := time.NewTimer(stopTimeout + stopGrace)
		defer backstop.Stop()
		select {
		case <-ch:
			fmt.Fprintln(stderr, "ferry: error: second signal: exiting at once; writes in flight were not flushed (the markers on the target record what was applied)")
		case <-backstop.C:
			fmt.Fprintf(stderr, "ferry: error: not stopped within stop_timeout %s: exiting; writes in flight were not flushed (the markers on the target record what was applied)\n", stopTimeout)
		case <-done:
			return
		}
		exitNow(exitFailure)
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
