// Package dial opens ferry's connections to Redis servers: TCP or TLS, AUTH,
// CLIENT SETNAME, with errors an operator can act on.
package dial

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ferry-dev/ferry/fault"
	"github.com/ferry-dev/ferry/resp"
)

// Options say how to reach one server.
type Options struct {
	Addr     string // host:port
	Username string // ACL user; "" for the default user
	Password string
	TLS      *tls.Config // nil: plain TCP
	Timeout  time.Duration
}

// ErrAuth is wrapped by errors that mean the credentials were refused: retrying
// will not help.
var ErrAuth = errors.New("authentication failed")

// Conn dials addr and returns a raw connection, TLS-wrapped when configured.
func Conn(ctx context.Context, o Options) (net.Conn, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
	c, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %s", o.Addr, describeNetErr(err))
	}
	c = quiet(c)
	if o.TLS == nil {
		return c, nil
	}
	cfg := o.TLS.Clone()
	if cfg.ServerName == "" && !cfg.InsecureSkipVerify {
		host, _, _ := net.SplitHostPort(o.Addr)
		cfg.ServerName = host
	}
	tc := tls.Client(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		c.Close()
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("tls handshake with %s: %w", o.Addr, ctx.Err())
		}
		// A deadline of ctx (go-redis sets its DialTimeout on it) is no
		// answer in time, like our own timeout.
		if notTLS(err) {
			return nil, &HandshakeError{Addr: o.Addr, Err: err}
		}
		if fault.IsPermanent(err) {
			return nil, &fault.Error{Class: fault.Permanent, Server: o.Addr, Command: "TLS handshake",
				Fix: "check tls_ca_file, tls_server_name and the server's certificate", Err: errors.New(describeTLSErr(err))}
		}
		return nil, fmt.Errorf("tls handshake with %s: %s", o.Addr, describeTLSErr(err))
	}
	return tc, nil
}

// ErrTLSHandshake is wrapped by a HandshakeError.
var ErrTLSHandshake = errors.New("TLS handshake failed")

// HandshakeError is a TLS handshake that got no TLS answer: no reply within
// the dial timeout, a reply that is not TLS, or the connection closed — what
// a server without TLS does with a ClientHello. Certificate problems are
// other errors.
type HandshakeError struct {
	Addr string
	Err  error // what the handshake saw; not in the message, which says what to check
}

func (e *HandshakeError) Error() string {
	return fmt.Sprintf("%v — is TLS enabled on %s?", ErrTLSHandshake, e.Addr)
}

func (e *HandshakeError) Unwrap() []error { return []error{ErrTLSHandshake, e.Err} }

// notTLS reports whether a failed handshake means the peer does not speak
// TLS (as opposed to a certificate or protocol version refused by a TLS
// server).
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh):
		return true // "first record does not look like a TLS handshake": a plain server's error reply
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return true // a plain Redis waits for the end of the "inline command" that the ClientHello is to it
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return true
	}
	return false
}

// RedisDialer is a go-redis Options.Dialer for ferry's control-plane
// clients: TCP, and with tlsCfg the TLS handshake, each within timeout,
// with Conn's errors. go-redis retries a failed dial (DialerRetries) and each
// retry of a handshake that gets no answer would wait the whole timeout
// again: after a HandshakeError the dialer fails at once for the same
// address during one more timeout.
func RedisDialer(tlsCfg *tls.Config, timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var (
		mu     sync.Mutex
		failed = map[string]failure{}
	)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		f, ok := failed[addr]
		if ok && time.Since(f.at) >= timeout {
			delete(failed, addr)
			ok = false
		}
		mu.Unlock()
		if ok {
			return nil, f.err
		}
		c, err := Conn(ctx, Options{Addr: addr, TLS: tlsCfg, Timeout: timeout})
		var he *HandshakeError
		if errors.As(err, &he) {
			mu.Lock()
			failed[addr] = failure{err: err, at: time.Now()}
			mu.Unlock()
		}
		return c, err
	}
}

type failure struct {
	err error
	at  time.Time
}

// Open dials, authenticates and names the connection. name may be "" to skip
// CLIENT SETNAME; a server that forbids SETNAME (ACL, renamed command) is not
// an error: the name only helps operators.
func Open(ctx context.Context, o Options, name string, bufSize int) (*resp.Conn, error) {
	nc, err := Conn(ctx, o)
	if err != nil {
		return nil, err
	}
	c := resp.NewConn(nc, bufSize)
	c.Timeout = o.Timeout
	if c.Timeout <= 0 {
		c.Timeout = 5 * time.Second
	}
	// A stop must not wait for a peer that stalls the handshake.
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	err = Handshake(c, o, name)
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		nc.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", o.Addr, ctx.Err())
		}
		return nil, err
	}
	return c, nil
}

// Guarded is RedisDialer whose connections check every reply against lim as
// it arrives (resp.Guard): go-redis itself allocates whatever a reply
// declares and recurses into any nesting.
func Guarded(timeout time.Duration, tlsCfg *tls.Config, lim resp.Limits) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialer := RedisDialer(tlsCfg, timeout)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return resp.Guard(c, lim), nil
	}
}

// Handshake runs AUTH and CLIENT SETNAME on an open connection.
func Handshake(c *resp.Conn, o Options, name string) error {
	if o.Password != "" {
		args := []string{"AUTH", o.Password}
		if o.Username != "" {
			args = []string{"AUTH", o.Username, o.Password}
		}
		if _, err := c.Do(args...); err != nil {
			return authError(o, err)
		}
	}
	if name != "" {
		if _, err := c.Do("CLIENT", "SETNAME", name); err != nil {
			var re *resp.ReplyError
			if !errors.As(err, &re) {
				return fmt.Errorf("%s: %w", o.Addr, err)
			}
			if p := re.Prefix(); p == "NOAUTH" {
				return &fault.Error{Class: fault.Permanent, Server: o.Addr, Command: "CLIENT SETNAME",
					Fix: "give the server's password in the address (redis://user:pass@host:port)",
					Err: fmt.Errorf("%w: the server requires a password and none is configured", ErrAuth)}
			}
		}
	}
	return nil
}

func authError(o Options, err error) error {
	user := o.Username
	if user == "" {
		user = "default"
	}
	var re *resp.ReplyError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: AUTH: %w", o.Addr, err) // the link failed: transient
	}
	class, fix := fault.Reply(re.Msg)
	if class == fault.Transient {
		return &fault.Error{Class: class, Server: o.Addr, Command: "AUTH", Err: re}
	}
	e := &fault.Error{Class: fault.Permanent, Server: o.Addr, Command: "AUTH", Fix: fix}
	switch re.Prefix() {
	case "WRONGPASS", "ERR":
		if strings.Contains(re.Msg, "without any password configured") {
			e.Err = fmt.Errorf("%w: refused: the server has no password set, but one is configured", ErrAuth)
			return e
		}
		e.Err = fmt.Errorf("%w: wrong password or user %q (%s)", ErrAuth, user, re.Msg)
		e.Fix = "correct the user name or password in the address"
	case "NOPERM":
		e.Err = fmt.Errorf("%w: user %q: %s", ErrAuth, user, re.Msg)
	default:
		e.Err = fmt.Errorf("%w: as %q: %s", ErrAuth, user, re.Msg)
	}
	return e
}

func describeNetErr(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused (is the server running and listening on that port?)"
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		return "timed out"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "cannot resolve host " + dnsErr.Name
	}
	return err.Error()
}

func describeTLSErr(err error) string {
	var uerr x509.UnknownAuthorityError
	if errors.As(err, &uerr) {
		return "certificate signed by an unknown authority (check the CA file)"
	}
	return err.Error()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
