package redistest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections to a server and can black-hole the ones it
// holds: the connections stay open but no byte goes through, the way a dead
// middlebox or a frozen peer looks to a client.
type Proxy struct {
	Addr string

	ln      net.Listener
	target  string
	mu      sync.Mutex
	links   []*proxyLink
	stalled bool // Freeze: links made from now on are black holes too
	late    atomic.Int64
	// delay is a delay proxy's latency (nil: bytes go through at once);
	// closed ends the goroutines that hold delayed bytes.
	delay  *atomic.Int64
	closed chan struct{}
}

type proxyLink struct {
	client, server net.Conn
	gate           chan struct{} // closed while traffic may flow
	mu             sync.Mutex
	blocked        bool
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	return newProxy(t, target, nil)
}

// NewDelayProxy is a Proxy that holds every byte it forwards, either way,
// for delay (in order, without limiting the throughput): a link with
// latency, such as that of a replica lagging behind its master. SetDelay
// changes it.
func NewDelayProxy(t testing.TB, target string, delay time.Duration) *Proxy {
	t.Helper()
	d := &atomic.Int64{}
	d.Store(int64(delay))
	return newProxy(t, target, d)
}

// SetDelay changes a delay proxy's latency for the bytes it reads from now
// on; a byte never overtakes one read before it. A proxy made by NewProxy
// has no latency: it ignores the call.
func (p *Proxy) SetDelay(d time.Duration) {
	if p.delay != nil {
		p.delay.Store(int64(d))
	}
}

func newProxy(t testing.TB, target string, delay *atomic.Int64) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target, delay: delay, closed: make(chan struct{})}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.KillAll()
		close(p.closed)
	})
	return p
}

// URL is the proxy's redis:// address.
func (p *Proxy) URL() string { return "redis://" + p.Addr }

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &proxyLink{client: c, server: s, gate: make(chan struct{})}
		p.mu.Lock()
		if p.stalled {
			l.blocked = true // frozen: new links are black holes too
		} else {
			close(l.gate)
		}
		p.links = append(p.links, l)
		p.mu.Unlock()
		go l.pipe(c, p.delayed(s), &p.late)
		go l.pipe(s, p.delayed(c), nil)
	}
}

// delayed is c, or for a delay proxy c behind the proxy's latency.
func (p *Proxy) delayed(c net.Conn) net.Conn {
	if p.delay == nil {
		return c
	}
	return newDelayConn(c, p.delay, p.closed)
}

// pipe copies from to to; late, if not nil, counts the bytes a stall held.
func (l *proxyLink) pipe(from, to net.Conn, late *atomic.Int64) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 {
			l.mu.Lock()
			gate, held := l.gate, l.blocked
			l.mu.Unlock()
			<-gate // a stalled link holds the bytes until Resume or KillAll
			if held && late != nil {
				late.Add(int64(n))
			}
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				to.Close()
			}
			from.Close()
			to.Close()
			return
		}
	}
}

// Stall black-holes every connection open now; new ones flow normally.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.mu.Lock()
		if !l.blocked {
			l.blocked = true
			l.gate = make(chan struct{})
		}
		l.mu.Unlock()
	}
}

// unblock lets a stalled link's held bytes through.
func (l *proxyLink) unblock() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.blocked {
		close(l.gate)
		l.blocked = false
	}
}

// Freeze black-holes every connection, open now or made later: a server
// that accepts connections and never answers. KillAll ends it.
func (p *Proxy) Freeze() {
	p.Stall()
	p.mu.Lock()
	p.stalled = true
	p.mu.Unlock()
}

// Resume ends a Stall or a Freeze: the bytes held go through, late, on the
// connections they came on (to a server that closed its side, they are
// lost).
func (p *Proxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.unblock()
	}
	p.stalled = false
}

// HeldBytes is how many bytes from clients to the server a stall held and
// then released (Resume, or KillAll, which drops them).
func (p *Proxy) HeldBytes() int64 { return p.late.Load() }

// KillAll closes every connection (and ends a Freeze).
func (p *Proxy) KillAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, l := range p.links {
		l.client.Close()
		l.server.Close()
		l.unblock()
	}
	p.links = nil
	p.stalled = false
}

// delayConn writes what it is given delay after it was given, in order,
// from a goroutine of its own, so that the other side is read at once and
// the latency does not limit the throughput. Close closes the connection
// once what was given is written.
type delayConn struct {
	net.Conn
	delay *atomic.Int64
	ch    chan delayedBytes
	once  sync.Once
}

type delayedBytes struct {
	due  time.Time
	data []byte
}

// newDelayConn starts the writer of c; it ends when the connection is
// closed or fails, or when closed is.
func newDelayConn(c net.Conn, delay *atomic.Int64, closed <-chan struct{}) *delayConn {
	d := &delayConn{Conn: c, delay: delay, ch: make(chan delayedBytes, 4096)}
	go func() {
		defer c.Close()
		t := time.NewTimer(0)
		defer t.Stop()
		for x := range d.ch {
			t.Reset(time.Until(x.due))
			select {
			case <-t.C:
			case <-closed:
				drain(d.ch)
				return
			}
			if _, err := c.Write(x.data); err != nil {
				drain(d.ch)
				return
			}
		}
	}()
	return d
}

// drain takes what the pipe still writes until it sees the end of its side
// and closes: a pipe blocked on a full channel would never end.
func drain(ch <-chan delayedBytes) {
	for range ch {
	}
}

func (d *delayConn) Write(p []byte) (int, error) {
	d.ch <- delayedBytes{time.Now().Add(time.Duration(d.delay.Load())), append([]byte(nil), p...)}
	return len(p), nil
}

func (d *delayConn) Close() error {
	d.once.Do(func() { close(d.ch) })
	return nil
}
