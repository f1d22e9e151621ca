package job

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestTargetLacksCommand: a command the source runs and the target does not
// know (here renamed away on the target, as an older target lacks a newer
// command) stops the job with an error naming it (on_error = stop), or is
// skipped (on_error = skip) while the rest goes on.
func TestTargetLacksCommand(t *testing.T) {
	redistest.Require(t)
	for _, policy := range []string{"stop", "skip"} {
		t.Run(policy, func(t *testing.T) {
			src := redistest.Start(t)
			dst := redistest.Start(t, "--rename-command", "APPEND", "")
			c := testConf(t, src.URL(), dst.URL())
			c.OnError = conf.OnError(policy)
			ended := make(chan error, 1)
			stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t)}, ended)
			redistest.WaitFor(t, 10*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "the snapshot")
			src.Do(t, "APPEND", "k", "v") // replicated as is
			src.Do(t, "SET", "after", "1")
			if policy == "stop" {
				var err error
				select {
				case err = <-ended:
				case <-time.After(30 * time.Second):
					t.Fatal("the job did not stop on a command the target does not know")
				}
				if err == nil || !strings.Contains(err.Error(), "the target does not know APPEND") {
					t.Fatalf("want an error naming APPEND, got %v", err)
				}
				return
			}
			ctx := context.Background()
			redistest.WaitFor(t, 10*time.Second, func() bool {
				return dst.Client(t).Get(ctx, "after").Val() == "1"
			}, "the write after the skipped one")
			if n := dst.Client(t).Exists(ctx, "k").Val(); n != 0 {
				t.Errorf("the skipped APPEND's key exists on the target")
			}
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestClusterKeylessByFlags: on a cluster target, keyless commands go where
// the command table's flags say: FUNCTION LOAD and FLUSHALL to every master,
// PUBLISH to one; SWAPDB, which names dbs, stops the job with an error
// naming it.
func TestClusterKeylessByFlags(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	sc := src.Client(t)
	ctx := context.Background()
	o := clusterConf(t, src, dst)
	ended := make(chan error, 1)
	stop := runSyncEnded(t, o, ended)
	defer stop()
	src.Do(t, "SET", "a", "1")
	redistest.LoadFunctionLibrary(t, sc)
	src.Do(t, "PUBLISH", "news", "hello")
	src.Do(t, "SET", "b", "2")
	masters := dst.Addrs()[:len(dst.Masters)]
	redistest.AssertSameDataOpts(t, []string{src.Addr}, masters, redistest.CompareOptions{DstCluster: true, Wait: 30 * time.Second})
	for _, m := range dst.Masters {
		if libs := m.Client(t).FunctionList(ctx, redis.FunctionListQuery{}).Val(); len(libs) != 1 {
			t.Errorf("%s: %d function libraries, want the one FUNCTION LOAD brought to every master", m.Addr, len(libs))
		}
	}
	src.Do(t, "FLUSHALL")
	src.Do(t, "SET", "c", "3")
	redistest.AssertSameDataOpts(t, []string{src.Addr}, masters, redistest.CompareOptions{DstCluster: true, Wait: 30 * time.Second})
	src.Do(t, "SWAPDB", "0", "1")
	select {
	case err := <-ended:
		if err == nil || !strings.Contains(err.Error(), "SWAPDB cannot be applied to a cluster target") {
			t.Fatalf("want an error naming SWAPDB, got %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the job did not stop on SWAPDB")
	}
}
