package reader

import (
	"net"
	"syscall"
)

// lowWater sets how many bytes must be queued on a socket before the kernel
// wakes its reader (SO_RCVLOWAT). A snapshot arrives in the source's 16 KiB
// writes, a few KiB a segment; ferry reads faster than any source writes, so
// without it every few KiB cost a wake-up — an epoll wait, a read that finds
// the socket empty, a park and an unpark of the goroutine — which on a
// 2-core machine was a third of ferry's CPU during a full sync. A read
// returns what is queued either way; only the wake-up waits for the level.
//
// The level is a hint: where the socket has none (TLS, a pipe in a test, an
// OS without it), every arrival wakes the reader as before.
type lowWater struct {
	rc  syscall.RawConn // nil: no level can be set
	cur int
}

// newLowWater returns the level control of c's socket, at 1 byte.
func newLowWater(c net.Conn) *lowWater {
	w := &lowWater{cur: 1}
	if sc, ok := c.(syscall.Conn); ok && rcvLowatSupported {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
		}
	}
	return w
}

// ok reports whether the level can be set.
func (w *lowWater) ok() bool { return w.rc != nil }

// set asks for a wake-up once n bytes are queued. After a refusal (the
// socket is closing) no level is set again; the caller's reads then wait
// with its full read timeout, as without a level.
func (w *lowWater) set(n int) {
	if w.rc == nil || n == w.cur {
		return
	}
	var serr error
	if err := w.rc.Control(func(fd uintptr) { serr = setRcvLowat(fd, n) }); err != nil || serr != nil {
		w.rc = nil
		return
	}
	w.cur = n
}
