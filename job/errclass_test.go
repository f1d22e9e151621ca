package job

import (
	"context"
	"fmt"
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
	// A snapshot's plain strings go as SET (which ferry needs anyway, for
	// its markers), other values as RESTORE.
	src.Do(t, "SET", "k", "v")
	src.Do(t, "HSET", "h", "f", "v")
	dst := redistest.Start(t)
	aclUser(t, dst, "norestore", []string{"+@all", "-restore"})
	aclUser(t, dst, "noset", []string{"+@all", "-set"})
	for _, tc := range []struct {
		name  string
		set   func(c *conf.Job)
		wants []string
	}{
		{"password for a server without one", func(c *conf.Job) { c.Target.Password = "secret" }, []string{dst.Addr, "no password", "fix:"}},
		{"unknown ACL user", func(c *conf.Job) { c.Target.Username, c.Target.Password = "nobody", "secret" }, []string{dst.Addr, "AUTH", "wrong password", "fix:"}},
		{"user lacking a permission", func(c *conf.Job) { withUser(&c.Target, "norestore") }, []string{dst.Addr, "RESTORE", "NOPERM", "fix:"}},
		{"user that may not SET", func(c *conf.Job) { withUser(&c.Target, "noset") }, []string{dst.Addr, "SET", "NOPERM", "fix:"}},
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

// notReady is what /readyz would say about the job now.
func notReady(state func() State) []string {
	return state().Status("default", "sync").NotReady()
}

// TestTargetDownUnreadyThenResumes: a target that goes away is a transient
// fault: the sync keeps trying (one log line per state change), reports
// itself not ready once the writer has been down longer than the
// threshold, naming the writer and why, and resumes without loss when the
// target is back.
func TestTargetDownUnreadyThenResumes(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t, "--appendonly", "yes")
	sc := src.Client(t)
	c := testConf(t, src.URL(), dst.URL())
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f }})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	if why := notReady(state); len(why) != 0 {
		t.Fatalf("not ready while streaming: %v", why)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoadOpts(ctx, t, sc, true)
	time.Sleep(200 * time.Millisecond)
	dst.Stop(t)
	redistest.WaitFor(t, 30*time.Second, func() bool { return len(notReady(state)) > 0 }, "the sync to report the writer unready")
	why := strings.Join(notReady(state), "; ")
	if !strings.Contains(why, "ferry-writer-0") || !strings.Contains(why, "disconnected for") || !strings.Contains(why, "connection refused") {
		t.Errorf("readiness says %q; want the writer, how long and why", why)
	}
	dst.Restart(t)
	cancel()
	redistest.WaitFor(t, 30*time.Second, func() bool { return len(notReady(state)) == 0 }, "the sync to be ready again")
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTargetDebugSleepIsTransient: a target that stops answering for a
// while (DEBUG SLEEP) longer than the reply deadline is reconnected to and
// the sync goes on without loss.
func TestTargetDebugSleepIsTransient(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	c := testConf(t, src.URL(), dst.URL())
	c.Target.DialTimeout = time.Second
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), ioTimeout: time.Second, Observe: func(f func() State) { state = f }})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(200 * time.Millisecond)
	dst.Do(t, "DEBUG", "SLEEP", "3")
	time.Sleep(300 * time.Millisecond)
	cancel()
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if st := state(); st.Writers[0].Stats.Reconnects < 1 {
		t.Errorf("writer reconnects = %d; the 3 s sleep should have outlasted the 1 s reply deadline", st.Writers[0].Stats.Reconnects)
	}
	if why := notReady(state); len(why) != 0 {
		t.Errorf("not ready after the target woke up: %v", why)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTargetNeverAnswersRetryTimeout: a target that accepts connections
// and never answers is a transient fault for retry_timeout, then a migrate
// gives up with one line naming the target and the setting.
func TestTargetNeverAnswersRetryTimeout(t *testing.T) {
	redistest.Require(t)
	// The source holds its snapshot back, so the migrate is still running
	// when the target freezes.
	src := redistest.Start(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "20")
	src.Do(t, "SET", "k", "v")
	dst := redistest.Start(t)
	px := redistest.NewProxy(t, dst.Addr)
	c := testConf(t, src.URL(), px.URL())
	c.Target.DialTimeout = 500 * time.Millisecond
	c.KeepaliveInterval = 200 * time.Millisecond
	c.RetryTimeout = 2 * time.Second
	ended := make(chan error, 1)
	var state func() State
	runSyncEnded(t, Options{Conf: c, Migrate: true, Log: testLog(t), ioTimeout: 500 * time.Millisecond, Observe: func(f func() State) { state = f }}, ended)
	redistest.WaitFor(t, 10*time.Second, func() bool { return len(dst.ClientsNamed(t, "ferry-writer-")) == 1 }, "the writer's connection")
	px.Freeze()
	start := time.Now()
	var err error
	select {
	case err = <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the migrate did not give up on a target that never answers")
	}
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "retry_timeout") || !strings.Contains(err.Error(), px.Addr) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want one line naming the target and retry_timeout, got %v", err)
	}
	if took > 10*time.Second {
		t.Errorf("gave up after %s with retry_timeout 2s", took)
	}
	if st := state(); st.Phase != "failed" {
		t.Errorf("phase %q", st.Phase)
	}
	t.Logf("gave up after %s: %v", took.Round(time.Millisecond), err)
}

// TestSourceDownRetryTimeout: a source that goes away during a migrate is
// retried for retry_timeout, then the migrate gives up naming the source.
func TestSourceDownRetryTimeout(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	dst := redistest.Start(t)
	c := testConf(t, src.URL(), dst.URL())
	c.RetryTimeout = 2 * time.Second
	ended := make(chan error, 1)
	// A target that takes nothing: the migrate cannot catch up before the
	// source goes.
	hold := func(ctx context.Context, ops, bytes int) error { <-ctx.Done(); return ctx.Err() }
	states := make(chan func() State, 1)
	runSyncEnded(t, Options{Conf: c, Migrate: true, Log: testLog(t), throttle: hold, Observe: func(f func() State) { states <- f }}, ended)
	state := <-states
	redistest.WaitFor(t, 10*time.Second, func() bool {
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "streaming"
	}, "ferry's replica link to stream")
	src.Kill(t)
	start := time.Now()
	var err error
	select {
	case err = <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the migrate did not give up on a source that is gone")
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("gave up after %s with retry_timeout 2s", took)
	}
	if err == nil || !strings.Contains(err.Error(), "retry_timeout") || !strings.Contains(err.Error(), src.Addr) {
		t.Fatalf("want an error naming the source and retry_timeout, got %v", err)
	}
}

// TestFoldedRefusalSaysSo: a target user allowed SET but not MSET, and a
// run of SETs that fold sends as one MSET: the sync stops at once with one
// line that names the MSET as a run of the source's commands and points
// to fold, not with an MSET the source never ran.
func TestFoldedRefusalSaysSo(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	aclUser(t, dst, "nomset", []string{"+@all", "-mset"})
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Target, "nomset")
	ended := make(chan error, 1)
	runSyncEnded(t, Options{Conf: c, Log: testLog(t)}, ended)
	redistest.WaitFor(t, 10*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "the snapshot")

	ctx := context.Background()
	pipe := src.Client(t).Pipeline()
	for i := range 50 {
		pipe.Set(ctx, fmt.Sprintf("k%02d", i), i, 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	select {
	case err = <-ended:
	case <-time.After(20 * time.Second):
		t.Fatal("the sync did not stop on a refused MSET")
	}
	if err == nil {
		t.Fatal("the sync ended in success with its SETs refused")
	}
	msg := err.Error()
	for _, w := range []string{dst.Addr, "refused MSET", "source commands joined, see fold", "NOPERM", "fix:"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error of several lines: %q", msg)
	}
	t.Log(msg)
}
