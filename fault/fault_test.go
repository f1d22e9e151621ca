package fault

import (
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/ferry-dev/ferry/resp"
)

// goRedisErr has the shape of go-redis's reply errors.
type goRedisErr string

func (e goRedisErr) Error() string { return string(e) }
func (goRedisErr) RedisError()     {}

func TestClassOf(t *testing.T) {
	reply := func(msg string) error { return fmt.Errorf("ctx: %w", &resp.ReplyError{Cmd: "X", Msg: msg}) }
	for _, c := range []struct {
		err  error
		want Class
	}{
		{reply("WRONGPASS invalid username-password pair or user is disabled."), Permanent},
		{reply("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"), Permanent},
		{reply("NOAUTH Authentication required."), Permanent},
		{reply("NOPERM this user has no permissions to run the 'restore' command"), Permanent},
		{reply("ERR unknown command 'HPEXPIRE', with args beginning with: "), Permanent},
		{reply("ERR Bad data format"), Permanent},
		{reply("WRONGTYPE Operation against a key holding the wrong kind of value"), Permanent},
		{reply("LOADING Redis is loading the dataset in memory"), Transient},
		{reply("BUSY Redis is busy running a script."), Transient},
		{reply("TRYAGAIN Multiple keys request during rehashing of slot"), Transient},
		{reply("CLUSTERDOWN The cluster is down"), Transient},
		{reply("MASTERDOWN Link with MASTER is down"), Transient},
		{reply("READONLY You can't write against a read only replica."), Transient},
		{goRedisErr("WRONGPASS invalid username-password pair"), Permanent},
		{goRedisErr("LOADING Redis is loading"), Transient},
		{fmt.Errorf("read: %w", syscall.ECONNRESET), Transient},
		{io.ErrUnexpectedEOF, Transient},
		{&Error{Class: Permanent, Err: errors.New("x")}, Permanent},
	} {
		if got := ClassOf(c.err); got != c.want {
			t.Errorf("ClassOf(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if !Redirect("MOVED 3999 127.0.0.1:6381") || Retry("MOVED 3999 127.0.0.1:6381") || !Retry("LOADING x") {
		t.Error("MOVED is a redirect, not a retry; LOADING is a retry")
	}
	if !Moved("MOVED 3999 127.0.0.1:6381") || Moved("ASK 3999 127.0.0.1:6381") || Moved("TRYAGAIN x") {
		t.Error("only MOVED says a slot left for good")
	}
	if !Readonly(reply("READONLY You can't write against a read only replica.")) {
		t.Error("READONLY not recognised")
	}
	e := New("target 10.0.0.1:6379", "RESTORE \"k\"", reply("ERR Bad data format"))
	if e.Class != Permanent || e.Fix == "" {
		t.Errorf("New: %+v", e)
	}
}
