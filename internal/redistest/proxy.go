package redistest

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Addr: ln.Addr().String(), ln: ln, target: target}
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.KillAll()
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
		go l.pipe(c, s, &p.late)
		go l.pipe(s, c, nil)
	}
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
		l.mu.Lock()
		if l.blocked {
			close(l.gate)
			l.blocked = false
		}
		l.mu.Unlock()
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
		l.mu.Lock()
		if l.blocked {
			close(l.gate)
			l.blocked = false
		}
		l.mu.Unlock()
	}
	p.links = nil
	p.stalled = false
}
