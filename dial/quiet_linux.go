package dial

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// quietConn is a TCP connection whose reads enter the kernel without
// telling the Go scheduler.
//
// A read through package net goes through syscall.Syscall, which hands the
// goroutine's P back if the call blocks and, when every P was idle, wakes
// the runtime's monitor thread (sysmon). ferry's connections alternate
// between short bursts and waits: during a full sync it woke every couple
// of milliseconds, and each wake-up set sysmon polling every 20 µs for the
// next millisecond. On a 2-core VM that was a fifth of ferry's CPU, spent
// in nanosleep and futex calls; nine in ten of the system calls were reads.
//
// The socket is nonblocking (package net made it so), so a read returns at
// once, and syscall.RawSyscall is safe: there is no P to hand back. When
// the socket is empty the read fails with EAGAIN and the RawConn parks the
// goroutine on the netpoller as net would; deadlines and Close work as
// they do for net.Conn.
//
// Writes stay with package net. A flight of a few hundred KB written to a
// loopback target runs the receiving side in the kernel too and can take a
// millisecond, and through syscall.Syscall sysmon hands the P to another
// thread meanwhile, so ferry's other goroutines go on (ferry runs one P
// per stream). Raw writes held the P: in four make bench runs of the live
// stream, lag p99 had runs of 127–568 ms; with writes through net, 39–59 ms.
// Raw writes of up to 64 KiB only, tried again, took 4 % off ferry's CPU
// but made the source's load 1.30x its native time, against 1.08x through
// net in the next run (bench/PROFILE.md section 22).
//
// A read always tries the socket before it waits, even right after a read
// that took all the socket held (half of the reads find it empty then).
// Waiting first would save those calls, but each RawConn.Read clears the
// poller's record of readiness before it starts: bytes that arrived in
// between would wait for the next arrival or the deadline. Tried: a
// writer's replies then went unread until its timeout.
//
// sysmon has two more duties: it preempts a goroutine that has run for
// 10 ms, and it polls the network when no P has for 10 ms. Asleep, it wakes
// only for the next timer, a syscall entered through package syscall, or
// the end of a collection's stop. A process that only reads would leave a
// busy P unwatched, and goroutines whose socket was ready would wait: in
// TestQuietLeash a reply waited 2.2 s behind a busy goroutine (0.4 s
// through package net). So while a quiet connection is open a ticker
// keeps a timer due every 10 ms (the leash): sysmon keeps its duties at
// its own slowest pace instead of 50 wake-ups per millisecond after each
// idle moment.
type quietConn struct {
	*net.TCPConn
	rc     syscall.RawConn
	closed sync.Once
}

// quiet returns c with quiet reads when it is a TCP connection,
// c itself otherwise.
func quiet(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	leash.hold()
	return &quietConn{TCPConn: tc, rc: rc}
}

// Close closes the connection and lets go of the leash.
func (c *quietConn) Close() error {
	c.closed.Do(leash.release)
	return c.TCPConn.Close()
}

// leashPeriod is sysmon's own slowest pace while a P is busy.
const leashPeriod = 10 * time.Millisecond

// leash runs the ticker while quiet connections are open: it is the
// process's, as sysmon is.
var leash leashState

type leashState struct {
	mu   sync.Mutex
	held int
	stop chan struct{}
}

func (l *leashState) hold() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held++; l.held == 1 {
		l.stop = make(chan struct{})
		go tick(l.stop)
	}
}

func (l *leashState) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held--; l.held == 0 {
		close(l.stop)
	}
}

func tick(stop <-chan struct{}) {
	t := time.NewTicker(leashPeriod)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

func (c *quietConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false
			}
			n, errno = int(r), e
			return true
		}
	})
	if err != nil {
		return 0, c.readError(err)
	}
	if errno != 0 {
		return 0, c.readError(os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// readError gives a failed read the shape net gives it ("read tcp
// a->b: i/o timeout"), so messages and errors.Is/As checks do not change.
func (c *quietConn) readError(err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = "read"
		return oe
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
