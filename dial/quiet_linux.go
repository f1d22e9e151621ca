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

// quietConn is a TCP connection whose reads and writes enter the kernel
// without telling the Go scheduler.
//
// A read or write through package net goes through syscall.Syscall, which
// hands the goroutine's P back if the call blocks and, when every P was
// idle, wakes the runtime's monitor thread (sysmon). ferry's connections
// alternate between short bursts and waits: during a full sync it woke
// every couple of milliseconds, and each wake-up set sysmon polling every
// 20 µs for the next millisecond. On a 2-core VM that was a fifth of
// ferry's CPU, spent in nanosleep and futex calls.
//
// The socket is nonblocking (package net made it so), so a read or write
// returns at once, and syscall.RawSyscall is safe: there is no P to hand
// back. When the socket is not ready the call fails with EAGAIN and the
// RawConn parks the goroutine on the netpoller as net would; deadlines and
// Close work as they do for net.Conn.
//
// sysmon has two more duties: it preempts a goroutine that has run for
// 10 ms, and it polls the network when no P has for 10 ms. Asleep, it wakes
// only for the next timer, a syscall entered through package syscall, or
// the end of a collection's stop. With every connection quiet, a busy P
// could run on with nothing due to wake it, and goroutines whose socket
// was ready waited: in TestQuietLeash a reply waited 2.2 s behind a busy
// goroutine (0.1 s through package net), and the live stream's lag p99 in
// make bench was 288 ms against 47 ms. So while a quiet connection is open a ticker keeps a
// timer due every 10 ms (the leash): sysmon keeps its duties at their own
// pace instead of 50 wake-ups per millisecond after each idle moment.
type quietConn struct {
	*net.TCPConn
	rc     syscall.RawConn
	closed sync.Once
}

// quiet returns c with quiet reads and writes when it is a TCP connection,
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
		return 0, c.opError("read", err)
	}
	if errno != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (c *quietConn) Write(p []byte) (int, error) {
	var (
		n     int
		errno syscall.Errno
	)
	err := c.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = os.NewSyscallError("write", errno)
	}
	if err != nil {
		return n, c.opError("write", err)
	}
	return n, nil
}

// opError gives a failed read or write the shape net gives it ("read tcp
// a->b: i/o timeout"), so messages and errors.Is/As checks do not change.
func (c *quietConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
		return oe
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
