// Package fault decides, in one place, what an error from a Redis server or
// the network means for a job: Permanent (retrying cannot help — refused
// credentials, a missing permission, an unknown command, a refused payload,
// a failed TLS verification: stop within seconds with one line naming the
// server, the command and the fix) or Transient (the peer is down, busy,
// loading or failing over: retry with capped backoff, visibly).
//
// Error codes of Redis replies are read here and nowhere else.
package fault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/resp"
)

// Class is what an error means for the job.
type Class uint8

const (
	// Transient: retry; the peer may come back.
	Transient Class = iota
	// Permanent: retrying gives the same answer; the job stops.
	Permanent
)

func (c Class) String() string {
	if c == Permanent {
		return "permanent"
	}
	return "transient"
}

// Error is an error with its class, the server and command it came from,
// and for a permanent one what the user can do about it.
type Error struct {
	Class   Class
	Server  string // "target 127.0.0.1:6379", "source …"; "" if unknown
	Command string // the command refused ("AUTH", `RESTORE "k" (db 0)`); "" for a connection fault
	Fix     string // what to change; "" when there is nothing to say
	Err     error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Server != "" {
		b.WriteString(e.Server)
		b.WriteString(": ")
	}
	if e.Command != "" {
		b.WriteString(e.Command)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	if e.Fix != "" {
		b.WriteString(" (fix: ")
		b.WriteString(e.Fix)
		b.WriteString(")")
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// ClassOf is the class of err: the class of the first *Error in its chain;
// otherwise a Redis reply error is classified by its code, a protocol
// violation (resp.ErrProtocol: what no Redis sends, or more than ferry
// accepts) is permanent because reconnecting would read the same again, and
// anything else (network, timeout, EOF) is transient.
func ClassOf(err error) Class {
	if err == nil {
		return Transient
	}
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Class
	}
	if tlsVerify(err) || errors.Is(err, resp.ErrProtocol) {
		return Permanent
	}
	if msg, ok := replyMessage(err); ok {
		c, _ := Reply(msg)
		return c
	}
	return Transient
}

// IsPermanent reports whether err is permanent.
func IsPermanent(err error) bool { return err != nil && ClassOf(err) == Permanent }

// New classifies err as coming from server for command.
func New(server, command string, err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		c := *fe
		if c.Server == "" {
			c.Server = server
		}
		if c.Command == "" {
			c.Command = command
		}
		return &c
	}
	e := &Error{Class: ClassOf(err), Server: server, Command: command, Err: err}
	if msg, ok := replyMessage(err); ok {
		_, e.Fix = Reply(msg)
	}
	if tlsVerify(err) {
		e.Fix = "check tls_ca_file and tls_server_name for this server"
	}
	return e
}

// PermanentErr wraps err as a permanent error with a fix.
func PermanentErr(server, command, fix string, err error) *Error {
	return &Error{Class: Permanent, Server: server, Command: command, Fix: fix, Err: err}
}

// Reply classifies the text of an error reply ("WRONGPASS invalid …",
// "ERR unknown command …") and says what fixes a permanent one.
func Reply(msg string) (Class, string) {
	switch replyCode(msg) {
	case "LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "UNBLOCKED", "MOVED", "ASK":
		return Transient, ""
	case "READONLY":
		// A replica now, perhaps a master again after a failover: the
		// caller turns it permanent when it lasts (see ReadonlyFor).
		return Transient, ""
	case "WRONGPASS":
		return Permanent, "correct the user name or password in the address"
	case "NOAUTH":
		return Permanent, "give the server's password in the address (redis://user:pass@host:port)"
	case "NOPERM":
		return Permanent, "grant the user the permission named above (ACL SETUSER), see the README's ACL section"
	case "WRONGTYPE":
		return Permanent, "the target holds a key of another type under this name: remove it, or set target_nonempty / on_error"
	case "OOM":
		return Permanent, "raise maxmemory on the target or free memory there"
	case "EXECABORT":
		return Permanent, ""
	}
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "failover in progress"), strings.Contains(low, "failover is in progress"):
		return Transient, ""
	case strings.Contains(low, "without any password configured"), strings.Contains(low, "no password is set"):
		return Permanent, "remove the password from the address: the server has none"
	case strings.Contains(low, "unknown command"):
		return Permanent, "the server does not know this command (older version or rename-command): upgrade it or filter the command out"
	case strings.Contains(low, "bad data format"), strings.Contains(low, "payload version or checksum"):
		return Permanent, "the server cannot load this value (older version?): set restore = \"never\" to rewrite values as commands, or on_error = \"skip\""
	}
	// A refusal ferry does not know: retrying would get the same answer.
	return Permanent, ""
}

// ReadonlyFor is how long READONLY may last before it is permanent: a
// failover promotes a replica within seconds; a node that stays a replica
// was given as the wrong address.
const ReadonlyFor = 10 * time.Second

// replyCode is the error code of a reply: its first word.
func replyCode(msg string) string {
	if i := strings.IndexByte(msg, ' '); i > 0 {
		return msg[:i]
	}
	return msg
}

// Redirect reports whether a reply says the command's slot is served
// elsewhere, now or soon (MOVED, ASK, TRYAGAIN): route it again.
func Redirect(msg string) bool {
	switch replyCode(msg) {
	case "MOVED", "ASK", "TRYAGAIN":
		return true
	}
	return false
}

// Moved reports whether a reply says the key's slot is served by another
// master for good (MOVED); ASK and TRYAGAIN mean a migration in progress.
func Moved(msg string) bool { return replyCode(msg) == "MOVED" }

// Retry reports whether a reply to a data command means "try again on a
// new connection": the server is loading, busy, a replica right now, or
// mid-failover.
func Retry(msg string) bool {
	if Redirect(msg) {
		return false
	}
	c, _ := Reply(msg)
	return c == Transient
}

// Credentials says how credentials were refused, if err is such a refusal
// ("" otherwise).
func Credentials(err error) string {
	msg, ok := replyMessage(err)
	if !ok {
		return ""
	}
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "without any password configured"), strings.Contains(low, "no password is set"):
		return "the server has no password set, but one is configured"
	case replyCode(msg) == "WRONGPASS", strings.Contains(low, "invalid password"), strings.Contains(low, "invalid username-password"):
		return "wrong password or user"
	case replyCode(msg) == "NOAUTH":
		return "the server requires a password and none is configured"
	}
	return ""
}

// Readonly reports whether err is a READONLY reply (the node is a replica).
func Readonly(err error) bool {
	msg, ok := replyMessage(err)
	return ok && strings.HasPrefix(msg, "READONLY")
}

// redisReply is the shape of reply errors of ferry's own RESP code and of
// go-redis (whose errors have RedisError()).
type redisReply interface {
	error
	RedisError()
}

// replyMessage is the text of a Redis error reply in err's chain.
func replyMessage(err error) (string, bool) {
	var rr redisReply
	if errors.As(err, &rr) {
		return rr.Error(), true
	}
	var re *resp.ReplyError
	if errors.As(err, &re) {
		return re.Msg, true
	}
	return "", false
}

// tlsVerify reports whether err is a failed TLS verification (wrong CA,
// name or expired certificate), which no retry fixes.
func tlsVerify(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
