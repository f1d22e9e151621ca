package resp

import (
	"fmt"
	"net"
)

// Guard wraps a connection whose replies another RESP parser reads (go-redis,
// for the control plane and verify): every byte read is checked, as it
// arrives, against lim — nesting depth, declared bulk and aggregate lengths,
// line length — and the first violation is returned as a *LimitError from
// Read instead of the bytes, before the parser behind it could pre-allocate
// from a declared length or recurse into a nesting. The check keeps a few
// integers per nesting level; bulk payloads are skipped, not scanned.
//
// A bulk string longer than one chunk (64 KiB) is held back, from the end of
// its header, until its last byte has arrived: the parser behind, which
// allocates a bulk string's declared length when it reads the header, then
// allocates only for data that came.
func Guard(c net.Conn, lim Limits) net.Conn { return newGuard(c, lim, chunk) }

func newGuard(c net.Conn, lim Limits, holdOver int64) *guard {
	return &guard{Conn: c, s: Scanner{lim: lim, holdOver: holdOver}}
}

type guard struct {
	net.Conn
	s    Scanner
	err  error  // a violation: every later Read returns it
	rerr error  // the connection's error, returned once out is handed over
	buf  []byte // what the connection's last Read returned
	out  []byte // checked, to hand out
	hold []byte // a long bulk string so far (from its header's '\n')
}

func (g *guard) Read(p []byte) (int, error) {
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		if g.err != nil {
			return 0, g.err
		}
		if g.rerr != nil {
			err := g.rerr
			g.rerr = nil
			return 0, err
		}
		if g.buf == nil {
			g.buf = make([]byte, 16<<10)
		}
		n, err := g.Conn.Read(g.buf)
		if serr := g.take(g.buf[:n]); serr != nil {
			// What came before the violation is handed out first.
			g.err, g.hold = serr, nil
			continue
		}
		if err != nil {
			g.rerr = err
		}
	}
}

// take checks b and moves it to out, or to hold while a long bulk string is
// incomplete.
func (g *guard) take(b []byte) error {
	for len(b) > 0 {
		holding := g.s.holding
		n, ev, err := g.s.step(b)
		if err != nil {
			return err
		}
		switch {
		case ev == evHold:
			// b[n-1] ends the header: the parser may read up to it, not
			// the '\n' that lets it allocate.
			g.out = append(g.out, b[:n-1]...)
			g.hold = append(g.hold[:0], b[n-1:n]...)
		case ev == evRelease:
			g.out = append(g.out, g.hold...)
			g.out = append(g.out, b[:n]...)
			g.hold = nil
		case holding:
			g.hold = append(g.hold, b[:n]...)
		default:
			g.out = append(g.out, b[:n]...)
		}
		b = b[n:]
	}
	return nil
}

// Scanner follows a stream of RESP replies (RESP2 and RESP3 types) without
// keeping them, checking them against its limits.
type Scanner struct {
	lim      Limits
	holdOver int64   // step reports bulk strings longer than this (0: none)
	holding  bool    // in the body of such a bulk string
	stack    []int64 // elements still due at each open aggregate level
	// The current line: in a line (after its type byte) or in a bulk body.
	inLine  bool
	kind    byte
	lineLen int
	num     int64 // the header's number so far
	neg     bool
	digits  int
	body    int64 // bulk bytes (CRLF included) still to skip
}

// NewScanner returns a Scanner that checks against lim.
func NewScanner(lim Limits) *Scanner { return &Scanner{lim: lim} }

// Scan checks the next bytes of the stream.
func (s *Scanner) Scan(p []byte) error {
	for len(p) > 0 {
		n, _, err := s.step(p)
		if err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// Events of step.
const (
	evNone    = iota
	evHold    // the header of a bulk string longer than holdOver ended
	evRelease // that bulk string's last byte (CRLF included) arrived
)

// step checks bytes of p up to the first event and returns how many it
// consumed.
func (s *Scanner) step(p []byte) (int, int, error) {
	i := 0
	for i < len(p) {
		if s.body > 0 {
			k := int64(len(p) - i)
			if k > s.body {
				k = s.body
			}
			s.body -= k
			i += int(k)
			if s.body == 0 {
				s.done()
				if s.holding {
					s.holding = false
					return i, evRelease, nil
				}
			}
			continue
		}
		c := p[i]
		i++
		if !s.inLine {
			if !isKind(c) {
				return i, evNone, fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, c)
			}
			s.inLine, s.kind, s.lineLen, s.num, s.neg, s.digits = true, c, 1, 0, false, 0
			continue
		}
		s.lineLen++
		if s.lineLen > s.lim.MaxLine && s.lim.MaxLine > 0 {
			return i, evNone, &LimitError{What: "line", Size: int64(s.lineLen), Limit: int64(s.lim.MaxLine)}
		}
		if c != '\n' {
			if isLengthKind(s.kind) {
				switch {
				case c >= '0' && c <= '9' && s.digits < 18:
					s.num = s.num*10 + int64(c-'0')
					if s.num > 0 {
						s.digits++ // leading zeros do not count
					}
				case (c == '-' || c == '+') && s.lineLen == 2:
					s.neg = c == '-'
				case c == '\r':
				default:
					return i, evNone, fmt.Errorf("%w: bad length in a %q header", ErrProtocol, s.kind)
				}
			}
			continue
		}
		s.inLine = false
		if err := s.header(); err != nil {
			return i, evNone, err
		}
		if s.holdOver > 0 && s.body-2 > s.holdOver {
			s.holding = true
			return i, evHold, nil
		}
	}
	return i, evNone, nil
}

// isKind reports whether k starts a RESP2 or RESP3 value.
func isKind(k byte) bool {
	switch k {
	case '+', '-', ':', '_', ',', '#', '(', '.':
		return true
	}
	return isLengthKind(k)
}

func isLengthKind(k byte) bool {
	switch k {
	case '$', '=', '!', '*', '~', '>', '%', '|':
		return true
	}
	return false
}

// header acts on a complete line.
func (s *Scanner) header() error {
	n := s.num
	if s.neg {
		n = -n
	}
	switch s.kind {
	case '$', '=', '!':
		if n > s.lim.MaxBulk {
			return &LimitError{What: "bulk string", Size: n, Limit: s.lim.MaxBulk}
		}
		if n >= 0 {
			s.body = n + 2
			return nil
		}
	case '*', '~', '>', '%', '|':
		if s.kind == '%' || s.kind == '|' {
			n *= 2 // maps and attributes: a key and a value per entry
		}
		if n > s.lim.MaxArray {
			return &LimitError{What: "array", Size: n, Limit: s.lim.MaxArray}
		}
		if n > 0 {
			if len(s.stack) >= s.lim.MaxDepth {
				return &LimitError{What: "nesting", Size: int64(len(s.stack) + 1), Limit: int64(s.lim.MaxDepth)}
			}
			if s.kind == '|' {
				// An attribute precedes the reply it describes: its
				// entries are followed by one more value at this level.
				n++
			}
			s.stack = append(s.stack, n)
			return nil
		}
	}
	s.done()
	return nil
}

// done accounts one complete value to the aggregates it closes.
func (s *Scanner) done() {
	for len(s.stack) > 0 {
		top := len(s.stack) - 1
		s.stack[top]--
		if s.stack[top] > 0 {
			return
		}
		s.stack = s.stack[:top]
	}
}
