package job

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestMaxConnAge retires the writer's connection every second under load:
// each retirement goes through the resume path and loses or doubles nothing.
func TestMaxConnAge(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	c := testConf(t, src.URL(), dst.URL())
	c.MaxConnAge = time.Second
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f }})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	ids := map[int64]bool{}
	for end := time.Now().Add(3500 * time.Millisecond); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		for _, cl := range dst.ClientsNamed(t, "ferry-writer-") {
			ids[cl.ID] = true
			if cl.Age > 2*time.Second {
				t.Errorf("writer connection %d is %s old with max_conn_age 1s", cl.ID, cl.Age)
			}
		}
	}
	cancel()
	if len(ids) < 3 {
		t.Errorf("saw %d writer connections in 3.5 s with max_conn_age 1s", len(ids))
	}
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if st := state(); st.Writers[0].Stats.Reconnects < 2 {
		t.Errorf("writer reconnects = %d", st.Writers[0].Stats.Reconnects)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestTargetRefusesCommand: a write the target refuses stops the job with
// a message naming the command and key (on_error = stop), or is skipped and
// counted (on_error = skip).
func TestTargetRefusesCommand(t *testing.T) {
	redistest.Require(t)
	for _, policy := range []string{"stop", "skip"} {
		t.Run(policy, func(t *testing.T) {
			src := redistest.Start(t)
			dst := redistest.Start(t)
			dst.Do(t, "RPUSH", "clash", "a list on the target")
			c := testConf(t, src.URL(), dst.URL())
			c.TargetNonempty = "overwrite"
			c.OnError = conf.OnError(policy)
			var state func() State
			ended := make(chan error, 1)
			stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f }}, ended)
			redistest.WaitFor(t, 10*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "the snapshot")
			src.Do(t, "INCR", "clash") // WRONGTYPE on the target
			src.Do(t, "SET", "after", "1")
			if policy == "stop" {
				var err error
				select {
				case err = <-ended:
				case <-time.After(30 * time.Second):
					t.Fatal("the job did not stop on a refused command")
				}
				if err == nil || !strings.Contains(err.Error(), `INCR "clash"`) || !strings.Contains(err.Error(), "WRONGTYPE") {
					t.Fatalf("want an error naming INCR \"clash\" and WRONGTYPE, got %v", err)
				}
				return
			}
			redistest.WaitFor(t, 10*time.Second, func() bool {
				return dst.Client(t).Get(context.Background(), "after").Val() == "1"
			}, "the write after the refused one")
			// The target applies the flight before ferry reads its reply:
			// the count follows the reply.
			redistest.WaitFor(t, 10*time.Second, func() bool { return state().Writers[0].Stats.Skipped >= 1 }, "the skip counted")
			if n := state().Writers[0].Stats.Skipped; n != 1 {
				t.Errorf("skipped = %d", n)
			}
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestStalledTargetConnection: a target link that stops passing bytes without
// closing (a dead middlebox) is found by the reply deadline and replaced.
func TestStalledTargetConnection(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	px := redistest.NewProxy(t, dst.Addr)
	sc := src.Client(t)
	c := testConf(t, src.URL(), px.URL())
	c.KeepaliveInterval = 500 * time.Millisecond
	stop := runSync(t, Options{Conf: c, Log: testLog(t), ioTimeout: 2 * time.Second})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(300 * time.Millisecond)
	px.Stall()
	time.Sleep(3 * time.Second)
	cancel()
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStalledIdleTargetConnection: with nothing to write, only the keepalive
// can find a black-holed link.
func TestStalledIdleTargetConnection(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	px := redistest.NewProxy(t, dst.Addr)
	c := testConf(t, src.URL(), px.URL())
	c.KeepaliveInterval = 300 * time.Millisecond
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), ioTimeout: time.Second, Observe: func(f func() State) { state = f }})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	px.Stall()
	redistest.WaitFor(t, 10*time.Second, func() bool { return state().Writers[0].Stats.Reconnects >= 1 }, "the idle writer to notice the dead link")
	src.Do(t, "SET", "later", "1")
	redistest.WaitFor(t, 10*time.Second, func() bool {
		return dst.Client(t).Get(context.Background(), "later").Val() == "1"
	}, "a write through the new connection")
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestFenceOffSyncs(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 6})
	c := testConf(t, src.URL(), dst.URL())
	c.Fence = "off"
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	streamOnly(t, sc)
	time.Sleep(time.Second)
	cancel()
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}
