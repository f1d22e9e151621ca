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
func Guard(c net.Conn, lim Limits) net.Conn {
	return &guard{Conn: c, s: Scanner{lim: lim}}
}

type guard struct {
	net.Conn
	s   Scanner
	err error
}

func (g *guard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if n > 0 {
		if serr := g.s.Scan(p[:n]); serr != nil {
			g.err = serr
			return 0, serr
		}
	}
	return n, err
}

// Scanner follows a stream of RESP replies (RESP2 and RESP3 types) without
// keeping them, checking them against its limits.
type Scanner struct {
	lim   Limits
	stack []int64 // elements still due at each open aggregate level
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
		if s.body > 0 {
			k := int64(len(p))
			if k > s.body {
				k = s.body
			}
			s.body -= k
			p = p[k:]
			if s.body == 0 {
				s.done()
			}
			continue
		}
		c := p[0]
		p = p[1:]
		if !s.inLine {
			if !isKind(c) {
				return fmt.Errorf("%w: unexpected reply type %q", ErrProtocol, c)
			}
			s.inLine, s.kind, s.lineLen, s.num, s.neg, s.digits = true, c, 1, 0, false, 0
			continue
		}
		s.lineLen++
		if s.lineLen > s.lim.MaxLine && s.lim.MaxLine > 0 {
			return &LimitError{What: "line", Size: int64(s.lineLen), Limit: int64(s.lim.MaxLine)}
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
					return fmt.Errorf("%w: bad length in a %q header", ErrProtocol, s.kind)
				}
			}
			continue
		}
		s.inLine = false
		if err := s.header(); err != nil {
			return err
		}
	}
	return nil
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
