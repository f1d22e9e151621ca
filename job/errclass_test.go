package job

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestPermanentTargetErrorsStopAtOnce: refused credentials and a missing
// permission are permanent — the job stops within seconds with one line
// naming the server, the command and a fix — never retried forever.
func TestPermanentTargetErrorsStopAtOnce(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	dst := redistest.Start(t)
	aclUser(t, dst, "norestore", []string{"+@all", "-restore"})
	for _, tc := range []struct {
		name  string
		set   func(c *conf.Job)
		wants []string
	}{
		{"password for a server without one", func(c *conf.Job) { c.Target.Password = "secret" }, []string{dst.Addr, "no password", "fix:"}},
		{"unknown ACL user", func(c *conf.Job) { c.Target.Username, c.Target.Password = "nobody", "secret" }, []string{dst.Addr, "AUTH", "wrong password", "fix:"}},
		{"user lacking a permission", func(c *conf.Job) { withUser(&c.Target, "norestore") }, []string{dst.Addr, "RESTORE", "NOPERM", "fix:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst.Do(t, "FLUSHALL")
			for _, mode := range []string{"sync", "migrate"} {
				c := testConf(t, src.URL(), dst.URL())
				tc.set(&c)
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := Run(ctx, Options{Conf: c, Migrate: mode == "migrate", Log: testLog(t)})
				hung := ctx.Err() != nil
				cancel()
				took := time.Since(start)
				if err == nil || hung {
					t.Fatalf("%s: want a permanent error within seconds, got %v after %s", mode, err, took)
				}
				if took > 10*time.Second {
					t.Errorf("%s: took %s to stop on a permanent error", mode, took)
				}
				msg := err.Error()
				if strings.Contains(msg, "\n") {
					t.Errorf("%s: error of several lines: %q", mode, msg)
				}
				for _, w := range tc.wants {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: error %q does not name %q", mode, msg, w)
					}
				}
				t.Logf("%s: %s after %s", mode, msg, took.Round(time.Millisecond))
			}
		})
	}
}
