//go:build linux

package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ferry-dev/ferry/internal/cpusched"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// startFerryBatched starts ferry from a thread with the batch policy, which
// the process inherits: as under `chrt --batch` or systemd's
// CPUSchedulingPolicy=batch.
func startFerryBatched(t *testing.T, args ...string) *ferryProc {
	t.Helper()
	runtime.LockOSThread() // the fork runs on this thread
	defer runtime.UnlockOSThread()
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	attr.Size, attr.Policy = unix.SizeofSchedAttr, unix.SCHED_BATCH
	if err := unix.SchedSetAttr(0, attr, 0); err != nil {
		t.Fatal(err)
	}
	defer func() {
		attr.Policy = unix.SCHED_NORMAL
		if err := unix.SchedSetAttr(0, attr, 0); err != nil {
			t.Error(err)
		}
	}()
	return startFerry(t, args...)
}

// With batch or normal, every thread of a running ferry has that policy,
// whatever policy it was started with: a job's setting, or for a batch run
// its [defaults] one unless --cpu-scheduling overrides it.
func TestCPUScheduling(t *testing.T) {
	t.Parallel()
	runFile := func(t *testing.T, src, dst *redistest.Server) string {
		dir := t.TempDir()
		return writeFile(t, dir, "jobs.toml", fmt.Sprintf(
			"[defaults]\ndata_dir = %q\nprogress_interval = \"0s\"\nlog_format = \"json\"\nstatus_addr = \"off\"\ncpu_scheduling = \"normal\"\n\n"+
				"[[job]]\nname = \"follow\"\nmode = \"sync\"\nsource = %q\ntarget = %q\n",
			filepath.Join(dir, "data"), src.URL(), dst.URL()))
	}
	cases := []struct {
		name       string
		startBatch bool
		want       cpusched.Policy
		args       func(t *testing.T, src, dst *redistest.Server) []string
	}{
		{"sync-batch", false, cpusched.Batch, func(t *testing.T, src, dst *redistest.Server) []string {
			return []string{"sync", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""), "--cpu-scheduling", "batch"}
		}},
		{"run-defaults-normal", true, cpusched.Normal, func(t *testing.T, src, dst *redistest.Server) []string {
			return []string{"run", "-c", runFile(t, src, dst)}
		}},
		{"run-flag-batch", false, cpusched.Batch, func(t *testing.T, src, dst *redistest.Server) []string {
			return []string{"run", "-c", runFile(t, src, dst), "--cpu-scheduling", "batch"}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			src, dst := redistest.Start(t), redistest.Start(t)
			src.Do(t, "SET", "k", "v")
			args := c.args(t, src, dst)
			var p *ferryProc
			if c.startBatch {
				p = startFerryBatched(t, args...)
			} else {
				p = startFerry(t, args...)
			}
			redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "k").(int64) == 1 }, "the snapshot on the target")
			src.Do(t, "SET", "live", "1")
			redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "live").(int64) == 1 }, "a live write on the target")

			if bad := otherPolicy(t, p, c.want); bad != "" {
				t.Error(bad)
			}
			stopOK(t, p)
		})
	}
}

// With auto, the default, ferry's threads are batch while the snapshot is
// read (the source's fork child writes it slowly here) and back at the
// policy ferry started with once the stream is live.
func TestCPUSchedulingAuto(t *testing.T) {
	t.Parallel()
	src := redistest.Start(t, "--rdb-key-save-delay", "20000") // 20 ms a key
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 150, Seed: 41})
	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, "log_level = \"debug\""))
	var bad string
	last := lastSeen{&bad}
	redistest.WaitFor(t, 30*time.Second, func() bool {
		bad = otherPolicy(t, p, cpusched.Batch)
		return bad == ""
	}, "every thread batch during the snapshot (last: %s)", last)
	if keys := keyCount(t, dst); keys >= 150 {
		t.Fatalf("target holds all %d keys: the snapshot was over before the threads were seen batch", keys)
	}
	src.Do(t, "SET", "live", "1")
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "live").(int64) == 1 }, "a live write on the target")
	redistest.WaitFor(t, 10*time.Second, func() bool {
		bad = otherPolicy(t, p, cpusched.Normal)
		return bad == ""
	}, "every thread normal once live (last: %s)", last)
	stopOK(t, p)
}

// otherPolicy describes the first thread of ferry without policy want, or
// returns "".
func otherPolicy(t *testing.T, p *ferryProc, want cpusched.Policy) string {
	t.Helper()
	threads, err := cpusched.Of(ferryPID(p))
	if err != nil {
		t.Fatal(err)
	}
	if len(threads) < 2 {
		return fmt.Sprintf("%d threads listed for ferry; want the runtime's several", len(threads))
	}
	for tid, got := range threads {
		if got != want {
			return fmt.Sprintf("thread %d of %d: %v, want %v", tid, len(threads), got, want)
		}
	}
	return ""
}

// lastSeen prints what a wait saw last when the wait fails.
type lastSeen struct{ s *string }

func (l lastSeen) String() string { return *l.s }
