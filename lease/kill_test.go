package lease

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestKillConfirmed: a takeover counts the old owner's connections closed
// only when CLIENT LIST no longer shows them (Confirmed), or, where CLIENT
// LIST is not permitted, when CLIENT KILL answered. A connection whose kill
// was refused is unkilled while it is open, closed once it is gone (an
// owner that died: no lease_ttl wait); one registered without its ID is
// unkilled.
func TestKillConfirmed(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	for user, perms := range map[string]string{"nokill": "-client|kill", "nolist": "-client|list", "neither": "-client|kill -client|list", "noid": "-client|id"} {
		args := []any{"ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all"}
		for _, p := range strings.Fields(perms) {
			args = append(args, p)
		}
		s.Do(t, args...)
	}
	const ttl = 30 * time.Second
	cases := []struct {
		name        string
		user        string // the new owner's user ("": default)
		oldUser     string // the old owner's connection's user
		closeOld    bool   // the old connection closed before the takeover (a dead owner)
		wantClosed  int
		wantUnkill  int
		wantConfirm bool
		wantOpen    bool // the old connection still answers after
	}{
		{name: "kill and list", wantClosed: 1, wantConfirm: true},
		{name: "kill refused, connection open", user: "nokill", wantUnkill: 1, wantConfirm: true, wantOpen: true},
		{name: "kill refused, connection gone", user: "nokill", closeOld: true, wantClosed: 1, wantConfirm: true},
		{name: "list refused", user: "nolist", wantClosed: 1},
		{name: "kill and list refused", user: "neither", wantUnkill: 1, wantOpen: true},
		{name: "registered without its ID", oldUser: "noid", wantUnkill: 1, wantConfirm: false, wantOpen: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "__ferry:k" + string(rune('a'+i)) + ":lease"
			c := ctl.New(dial.Options{Addr: s.Addr, Username: tc.user, Password: pw(tc.user)})
			defer c.Close()
			a, b := owner("a"), owner("b")
			ta, err := Acquire(ctx, c, key, a, ttl, false)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := dial.Open(ctx, dial.Options{Addr: s.Addr, Username: tc.oldUser, Password: pw(tc.oldUser)}, "ferry-writer-0", 4096)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := Register(conn, key, "ferry-writer-0", a, ta.Epoch); err != nil {
				t.Fatal(err)
			}
			if tc.closeOld {
				conn.Close()
				redistest.WaitFor(t, 5*time.Second, func() bool { return len(s.ClientsNamed(t, "ferry-writer-0")) == 0 }, "the old connection gone")
			}
			tb, err := Acquire(ctx, c, key, b, ttl, true)
			if err != nil {
				t.Fatal(err)
			}
			if tb.Closed != tc.wantClosed || tb.Unkilled != tc.wantUnkill || tb.Confirmed != tc.wantConfirm {
				t.Errorf("closed %d unkilled %d confirmed %v, want %d %d %v", tb.Closed, tb.Unkilled, tb.Confirmed, tc.wantClosed, tc.wantUnkill, tc.wantConfirm)
			}
			if !tc.closeOld {
				if _, err := conn.Do("PING"); (err == nil) != tc.wantOpen {
					t.Errorf("the old connection after the takeover: PING %v, want open %v", err, tc.wantOpen)
				}
			}
			s.KillClients(t, "ferry-writer-")
		})
	}
}

func pw(user string) string {
	if user == "" {
		return ""
	}
	return "pw"
}
