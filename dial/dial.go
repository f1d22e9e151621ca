// Package dial opens ferry's connections to Redis servers: TCP or TLS, AUTH,
// CLIENT SETNAME, with errors an operator can act on.
package dial

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

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
		return nil, fmt.Errorf("tls handshake with %s: %s", o.Addr, describeTLSErr(err))
	}
	return tc, nil
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

// Guarded returns a dialer for go-redis (Options.Dialer) that connects like
// Conn — TCP, TLS when tlsCfg is set — and checks every reply against lim as
// it arrives (resp.Guard): go-redis itself allocates whatever a reply
// declares and recurses into any nesting.
func Guarded(timeout time.Duration, tlsCfg *tls.Config, lim resp.Limits) func(ctx context.Context, network, addr string) (net.Conn, error) {
	// Errors read like go-redis's own dialer's, which callers already
	// describe (see job.describeCtlErr).
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout, KeepAlive: 15 * time.Second}
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if tlsCfg != nil {
			cfg := tlsCfg
			if cfg.ServerName == "" {
				cfg = cfg.Clone()
				cfg.ServerName, _, _ = net.SplitHostPort(addr)
			}
			tc := tls.Client(c, cfg)
			hctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				c.Close()
				return nil, err
			}
			c = tc
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
				return fmt.Errorf("%s: %w: the server requires a password and none is configured", o.Addr, ErrAuth)
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
	if errors.As(err, &re) {
		switch re.Prefix() {
		case "WRONGPASS", "ERR":
			if strings.Contains(re.Msg, "without any password configured") {
				return fmt.Errorf("%s: AUTH refused: the server has no password set, but one is configured", o.Addr)
			}
			return fmt.Errorf("%s: %w: wrong password or user %q (%s)", o.Addr, ErrAuth, user, re.Msg)
		case "NOPERM":
			return fmt.Errorf("%s: %w: user %q: %s", o.Addr, ErrAuth, user, re.Msg)
		}
		return fmt.Errorf("%s: AUTH as %q: %s", o.Addr, user, re.Msg)
	}
	return fmt.Errorf("%s: AUTH: %w", o.Addr, err)
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
