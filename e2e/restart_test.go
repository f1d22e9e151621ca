// Package e2e holds tests that run the ferry binary as a separate process:
// what happens when the process itself dies.
package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// ferry is a running ferry process.
type ferry struct {
	cmd    *exec.Cmd
	out    *bytes.Buffer
	done   chan struct{}
	exitOK bool
}

func startFerry(t *testing.T, args ...string) *ferry {
	t.Helper()
	f := &ferry{out: &bytes.Buffer{}, done: make(chan struct{})}
	f.cmd = exec.Command(redistest.FerryBinary(t), args...)
	w := &lockedWriter{b: f.out}
	f.cmd.Stdout, f.cmd.Stderr = w, w
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		f.exitOK = f.cmd.Wait() == nil
		close(f.done)
	}()
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		<-f.done
		if t.Failed() {
			t.Logf("ferry output:\n%s", w.String())
		}
	})
	return f
}

// stop sends SIGTERM and expects exit 0: a sync stopped by a signal after
// flushing is a success.
func (f *ferry) stop(t *testing.T) {
	t.Helper()
	f.cmd.Process.Signal(syscall.SIGTERM)
	<-f.done
	if !f.exitOK {
		t.Errorf("ferry did not exit 0 on SIGTERM")
	}
}

type lockedWriter struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func markerOffset(t *testing.T, dst *redistest.Server) int64 {
	v, err := dst.Client(t).Get(context.Background(), "__ferry:e2e:pos").Result()
	if err != nil {
		return -1
	}
	f := strings.Fields(v)
	if len(f) < 6 || f[2] != "live" {
		return -1
	}
	off, _ := strconv.ParseInt(f[4], 10, 64)
	return off
}

func infoInt(t *testing.T, s *redistest.Server, section, field string) int64 {
	v, _ := strconv.ParseInt(s.Info(t, section)[field], 10, 64)
	return v
}

// TestKill9AndRestartResumes: ferry killed with SIGKILL under load and started
// again continues from the position the target holds, with a partial resync,
// and no counter is off by one.
func TestKill9AndRestartResumes(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 11})
	args := []string{"sync", "--source", src.URL(), "--target", dst.URL(), "--job", "e2e", "--log-format", "json"}
	dataDir := t.TempDir()
	args = append(args, "-c", writeConf(t, dataDir))

	f := startFerry(t, args...)
	redistest.WaitFor(t, 30*time.Second, func() bool { return markerOffset(t, dst) >= 0 }, "the snapshot")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := runCounters(ctx, t, sc)
	time.Sleep(800 * time.Millisecond)
	f.cmd.Process.Signal(syscall.SIGKILL)
	<-f.done
	fullBefore := infoInt(t, src, "stats", "sync_full")
	time.Sleep(500 * time.Millisecond) // the source goes on while ferry is dead

	f2 := startFerry(t, args...)
	time.Sleep(800 * time.Millisecond)
	cancel()
	counts.wait()
	want := infoInt(t, src, "replication", "master_repl_offset")
	redistest.WaitFor(t, 30*time.Second, func() bool { return markerOffset(t, dst) >= want }, "the restarted ferry to catch up")
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	counts.check(t, dst.Client(t))
	if got := infoInt(t, src, "stats", "sync_full"); got != fullBefore {
		t.Errorf("restart did a full resync (sync_full %d → %d)", fullBefore, got)
	}
	if infoInt(t, src, "stats", "sync_partial_ok") < 1 {
		t.Errorf("restart did not resume with a partial resync")
	}
	f2.stop(t)
}

type counters struct {
	mu   sync.Mutex
	incr map[string]int64
	push map[string]int64
	wg   sync.WaitGroup
}

func runCounters(ctx context.Context, t *testing.T, c *redis.Client) *counters {
	cs := &counters{incr: map[string]int64{}, push: map[string]int64{}}
	cs.wg.Add(1)
	go func() {
		defer cs.wg.Done()
		stop := ctx
		ctx := context.Background() // a pipeline cut off by its context could be applied uncounted
		for i := 0; stop.Err() == nil; i++ {
			k := strconv.Itoa(i % 40)
			p := c.Pipeline()
			p.Incr(ctx, "ctr:"+k)
			p.RPush(ctx, "lst:"+k, i)
			p.Append(ctx, "app:"+k, "y")
			if _, err := p.Exec(ctx); err != nil {
				return
			}
			cs.mu.Lock()
			cs.incr["ctr:"+k]++
			cs.push["lst:"+k]++
			cs.mu.Unlock()
		}
	}()
	return cs
}

func (cs *counters) wait() { cs.wg.Wait() }

func (cs *counters) check(t *testing.T, dst redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	for k, want := range cs.incr {
		if got, _ := dst.Get(ctx, k).Int64(); got != want {
			t.Errorf("%s = %d on the target, incremented %d times on the source", k, got, want)
		}
	}
	for k, want := range cs.push {
		if got := dst.LLen(ctx, k).Val(); got != want {
			t.Errorf("%s has %d elements on the target, %d pushed on the source", k, got, want)
		}
	}
}

func writeConf(t *testing.T, dataDir string) string {
	p := t.TempDir() + "/ferry.toml"
	// takeover: the tests restart ferry right after a SIGKILL, within the
	// dead process's lease (on the same machine a dead owner's lease is
	// taken at once anyway: TestLeaseAfterKill).
	body := "data_dir = " + strconv.Quote(dataDir) + "\nstatus_addr = \"off\"\nprogress_interval = \"0s\"\ntakeover = true\n"
	if err := writeFile(p, body); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestKill9ClusterTargetResumes: the same with a cluster target, where the
// position lives in per-slot markers.
func TestKill9ClusterTargetResumes(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	dst := redistest.StartCluster(t, 3, 0)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 12})
	args := []string{"sync", "--source", src.URL(), "--target", "redis://" + dst.Masters[0].Addr, "--job", "e2e",
		"--log-format", "json", "-c", writeConf(t, t.TempDir())}
	f := startFerry(t, args...)
	var addrs []string
	for _, m := range dst.Masters {
		addrs = append(addrs, m.Addr)
	}
	redistest.AssertSameDataOpts(t, []string{src.Addr}, addrs, redistest.CompareOptions{DstCluster: true, Wait: 30 * time.Second})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := runCounters(ctx, t, sc)
	time.Sleep(800 * time.Millisecond)
	f.cmd.Process.Signal(syscall.SIGKILL)
	<-f.done
	fullBefore := infoInt(t, src, "stats", "sync_full")
	time.Sleep(500 * time.Millisecond)

	f2 := startFerry(t, args...)
	time.Sleep(800 * time.Millisecond)
	cancel()
	counts.wait()
	redistest.AssertSameDataOpts(t, []string{src.Addr}, addrs, redistest.CompareOptions{DstCluster: true, Wait: 30 * time.Second})
	counts.check(t, dst.Client(t))
	if got := infoInt(t, src, "stats", "sync_full"); got != fullBefore {
		t.Errorf("restart did a full resync (sync_full %d → %d)", fullBefore, got)
	}
	f2.stop(t)
}
