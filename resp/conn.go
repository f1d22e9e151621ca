package resp

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"
)

// Conn is a raw RESP connection: a net.Conn with a counting Reader and a
// buffered writer. It is not safe for concurrent use; its owner serialises
// access (the writer under its mutex, the PSYNC reader in its own goroutine).
type Conn struct {
	net.Conn
	R *Reader
	W *bufio.Writer
	// Timeout bounds each synchronous Do round trip; 0 means none.
	Timeout time.Duration
}

// NewConn wraps c with read and write buffers of the given size. Replies are
// read with ReplyLimits(); a caller that reads more (the writer's replies to
// replicated commands) sets its own with R.SetLimits.
func NewConn(c net.Conn, bufSize int) *Conn {
	r := NewReader(c, bufSize)
	r.SetLimits(ReplyLimits())
	return &Conn{Conn: c, R: r, W: bufio.NewWriterSize(c, bufSize)}
}

// Do sends one command and reads its reply. An error reply is returned as a
// *ReplyError so callers can tell it from a broken connection.
func (c *Conn) Do(args ...string) (Value, error) {
	if c.Timeout > 0 {
		if err := c.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
			return Value{}, err
		}
		defer c.SetDeadline(time.Time{})
	}
	if _, err := c.W.Write(AppendCommandStrings(nil, args...)); err != nil {
		return Value{}, err
	}
	if err := c.W.Flush(); err != nil {
		return Value{}, err
	}
	v, err := c.R.ReadValue()
	if err != nil {
		return Value{}, err
	}
	if v.IsError() {
		return v, &ReplyError{Cmd: strings.ToUpper(args[0]), Msg: string(v.Str)}
	}
	return v, nil
}

// ReplyError is an error reply from the server to a command.
type ReplyError struct {
	Cmd string
	Msg string
}

func (e *ReplyError) Error() string { return fmt.Sprintf("%s: %s", e.Cmd, e.Msg) }

// Prefix is the error code of the reply: "ERR", "WRONGPASS", "NOAUTH", "MOVED"...
func (e *ReplyError) Prefix() string {
	if i := strings.IndexByte(e.Msg, ' '); i > 0 {
		return e.Msg[:i]
	}
	return e.Msg
}
