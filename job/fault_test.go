package job

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/status"
)

func infoInt(t *testing.T, s *redistest.Server, section, field string) int64 {
	t.Helper()
	v, err := strconv.ParseInt(s.Info(t, section)[field], 10, 64)
	if err != nil {
		t.Fatalf("INFO %s %s: %v", section, field, err)
	}
	return v
}

// markerOffset is the source offset the target has applied, from the marker.
func markerOffset(t *testing.T, dst *redistest.Server, job string) int64 {
	v, err := dst.Client(t).Get(context.Background(), "__ferry:"+job+":pos").Result()
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

// killRepeatedly closes the connections named prefix… on every server,
// rounds times, every interval, and returns how many it closed.
func killRepeatedly(t *testing.T, servers []*redistest.Server, prefix string, rounds int, every time.Duration) int {
	t.Helper()
	killed := 0
	for range rounds {
		time.Sleep(every)
		for _, s := range servers {
			killed += s.KillClients(t, prefix)
		}
	}
	return killed
}

// waitCaughtUp waits until the target's marker reaches the source's offset.
func waitCaughtUp(t *testing.T, src, dst *redistest.Server, job string, timeout time.Duration) {
	t.Helper()
	settleLoads(t)
	want := infoInt(t, src, "replication", "master_repl_offset")
	redistest.WaitFor(t, timeout, func() bool { return markerOffset(t, dst, job) >= want },
		"target to apply the source up to offset %d (marker at %d)", want, markerOffset(t, dst, job))
}

func TestSyncDiskAndDisklessSources(t *testing.T) {
	redistest.Require(t)
	for _, diskless := range []string{"no", "yes"} {
		t.Run("diskless="+diskless, func(t *testing.T) {
			src := redistest.Start(t, "--repl-diskless-sync", diskless)
			dst := redistest.Start(t)
			sc := src.Client(t)
			redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, DBs: []int{0, 1}, Big: true, Seed: 3})
			stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
			ctx, cancel := context.WithCancel(context.Background())
			l := runLoad(ctx, t, sc)
			time.Sleep(time.Second)
			cancel()
			waitCaughtUp(t, src, dst, "default", 30*time.Second)
			redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
			checkCounters(t, dst.Client(t), l)
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSourceLinkKilledPartialResync(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--repl-backlog-size", "64mb")
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 5})
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	fullBefore := infoInt(t, src, "stats", "sync_full")

	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	for i := 0; i < 5; i++ {
		time.Sleep(300 * time.Millisecond)
		redistest.WaitFor(t, 10*time.Second, func() bool { return src.Info(t, "replication")["connected_slaves"] == "1" }, "ferry to be linked")
		src.Do(t, "CLIENT", "KILL", "TYPE", "replica")
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if got := infoInt(t, src, "stats", "sync_full"); got != fullBefore {
		t.Errorf("sync_full went from %d to %d: a killed link must resume with a partial resync", fullBefore, got)
	}
	redistest.WaitFor(t, 10*time.Second, func() bool { return infoInt(t, src, "stats", "sync_partial_ok") >= 5 },
		"five partial resyncs after five killed links (sync_partial_ok = %d)", infoInt(t, src, "stats", "sync_partial_ok"))
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.PartialSyncs < 5 {
		t.Errorf("summary counts %d partial resyncs", sum.PartialSyncs)
	}
}

func TestBacklogOverrunFullResyncNoStaleKeys(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--repl-backlog-size", "16kb")
	dst := redistest.Start(t)
	sc := src.Client(t)
	fillDoomed(t, sc)
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	provokeFullResync(t, src, sc)
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkSwept(t, dst.Client(t), stop)
}

// TestBacklogOverrunFullResyncNoStaleKeysCluster: the same into a cluster
// target, whose masters refuse an UNLINK of keys in different slots: the
// sweep used to end the job there ("CROSSSLOT"), on every restart after.
func TestBacklogOverrunFullResyncNoStaleKeysCluster(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, "--repl-backlog-size", "16kb")
	dst := redistest.StartCluster(t, 3, 0)
	sc := src.Client(t)
	fillDoomed(t, sc)
	stop := runSync(t, clusterConf(t, src, dst))
	waitClusterSynced(t, src, dst)
	provokeFullResync(t, src, sc)
	waitClusterSynced(t, src, dst)
	checkSwept(t, dst.Client(t), stop)
}

// fillDoomed writes keys of which provokeFullResync deletes half.
func fillDoomed(t *testing.T, sc *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for i := 0; i < 500; i++ {
		sc.Set(ctx, "doomed:"+strconv.Itoa(i), i, 0)
		sc.Set(ctx, "kept:"+strconv.Itoa(i), i, 0)
	}
}

// provokeFullResync kills ferry's link and, before ferry is back, writes far
// more than the backlog holds and deletes the doomed keys: the gap cannot be
// replayed, and the keys deleted in it are what the sweep must remove.
func provokeFullResync(t *testing.T, src *redistest.Server, sc *redis.Client) {
	t.Helper()
	ctx := context.Background()
	fullBefore := infoInt(t, src, "stats", "sync_full")
	big := strings.Repeat("x", 1000)
	for round := 0; round < 20 && infoInt(t, src, "stats", "sync_full") == fullBefore; round++ {
		src.Do(t, "CLIENT", "KILL", "TYPE", "replica")
		p := sc.Pipeline()
		for i := 0; i < 300; i++ {
			p.Set(ctx, "filler:"+strconv.Itoa(i), big, 0)
		}
		for i := 0; i < 500; i++ {
			p.Del(ctx, "doomed:"+strconv.Itoa(i))
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if infoInt(t, src, "stats", "sync_full") == fullBefore {
		t.Fatal("could not provoke a full resync")
	}
	sc.Set(ctx, "after", "1", 0)
}

// checkSwept wants the doomed keys gone from the target and counted swept,
// and the sync to stop cleanly.
func checkSwept(t *testing.T, dst redis.UniversalClient, stop func() (Summary, error)) {
	t.Helper()
	ctx := context.Background()
	for _, k := range []string{"doomed:1", "doomed:499"} {
		if n := dst.Exists(ctx, k).Val(); n != 0 {
			t.Fatalf("%s, deleted on the source during the gap, survived on the target", k)
		}
	}
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Swept < 500 {
		t.Errorf("%d keys swept, want the 500 deleted in the gap: %+v", sum.Swept, sum)
	}
}

func TestSlowTargetSpoolAbsorbsLag(t *testing.T) {
	redistest.Require(t)
	// The source drops a replica whose output buffer passes 1 MB at once.
	src := redistest.Start(t, "--client-output-buffer-limit", "replica 1mb 1mb 1", "--repl-backlog-size", "32mb")
	dst := redistest.Start(t)
	sc := src.Client(t)
	c := testConf(t, src.URL(), dst.URL())
	c.SpoolMemory = 1 << 20
	c.BatchMaxOps = 64
	var slow atomic.Bool
	slow.Store(true)
	throttle := func(ctx context.Context, ops, bytes int) error {
		if slow.Load() {
			time.Sleep(50 * time.Millisecond) // ~1.3k ops/s: far slower than the load
		}
		return nil
	}
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), throttle: throttle, Observe: func(f func() State) { state = f }})
	redistest.WaitFor(t, 30*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "snapshot applied")

	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	var peakMem, peakDisk int64
	var heapPeak uint64
	// Sample until the backlog has been on disk for a while: how soon it
	// gets there depends on how fast this machine runs the load.
	deadline, spilled := time.Now().Add(60*time.Second), time.Time{}
	for time.Now().Before(deadline) && (spilled.IsZero() || time.Since(spilled) < 2*time.Second) {
		time.Sleep(100 * time.Millisecond)
		sh := state().Shards
		if len(sh) == 0 {
			continue
		}
		st := sh[0].Spool
		peakMem = max(peakMem, st.MaxInMemory)
		peakDisk = max(peakDisk, st.OnDisk)
		if peakDisk > 0 && spilled.IsZero() {
			spilled = time.Now()
		}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heapPeak = max(heapPeak, ms.HeapInuse)
	}
	cancel()
	if peakDisk == 0 {
		t.Errorf("the spool never spilled to disk: the test did not create lag")
	}
	if peakMem > 1<<20+256<<10 {
		t.Errorf("spool held %d bytes in memory, limit 1 MiB", peakMem)
	}
	if heapPeak > 200<<20 {
		t.Errorf("heap reached %d MB while lagging", heapPeak>>20)
	}
	slow.Store(false)
	waitCaughtUp(t, src, dst, "default", 60*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if n := infoInt(t, src, "stats", "sync_full"); n != 1 {
		t.Errorf("sync_full = %d: the source dropped ferry", n)
	}
	if strings.Contains(src.Log(), "overcoming of output buffer limits") {
		t.Errorf("the source closed ferry's link for its output buffer")
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("spool peak: %d KiB in memory, %d KiB on disk; heap peak %d MiB", peakMem>>10, peakDisk>>10, heapPeak>>20)
}

func TestMigrateExitsWhenCaughtUp(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, DBs: []int{0, 4}, Seed: 9})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sum, err := Run(ctx, Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("migrate did not exit by itself")
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	if n := dst.Client(t).Exists(context.Background(), "__ferry:default:pos").Val(); n != 0 {
		t.Error("migrate left its marker on the target")
	}
	if sum.Keys == 0 || sum.Applied.State != "live" {
		t.Errorf("summary: %+v", sum)
	}
}

// TestKeepaliveFromTargetTimeout: a snapshot that takes ≥10 s, then 15 s with
// no writes, against a target that closes clients idle for 2 s.
func TestKeepaliveFromTargetTimeout(t *testing.T) {
	redistest.Require(t)
	if testing.Short() {
		t.Skip("30 s")
	}
	src := redistest.Start(t, "--repl-diskless-sync", "no", "--rdb-key-save-delay", "100000") // 0.1 s a key
	dst := redistest.Start(t, "--timeout", "2")
	sc := src.Client(t)
	for i := 0; i < 100; i++ {
		sc.Set(context.Background(), "slow:"+strconv.Itoa(i), i, 0)
	}
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
	var id int64
	redistest.WaitFor(t, 10*time.Second, func() bool {
		cs := dst.ClientsNamed(t, "ferry-writer-")
		if len(cs) == 1 {
			id = cs[0].ID
		}
		return id != 0
	}, "the writer to connect")
	check := func(when string) {
		cs := dst.ClientsNamed(t, "ferry-writer-")
		if len(cs) != 1 || cs[0].ID != id {
			t.Fatalf("%s: writer connection %d was replaced: %+v", when, id, cs)
		}
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "the slow snapshot")
	check("after the snapshot")
	time.Sleep(15 * time.Second)
	check("after 15 s idle")
	sc.Set(context.Background(), "after-idle", "1", 0)
	redistest.WaitFor(t, 5*time.Second, func() bool {
		return dst.Client(t).Get(context.Background(), "after-idle").Val() == "1"
	}, "a write after the idle time")
	cs := dst.ClientsNamed(t, "ferry-writer-")
	if cs[0].Age < 25*time.Second {
		t.Errorf("writer connection age %s", cs[0].Age)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestKillStorm kills every ferry connection on the target every 300 ms
// under a load of non-idempotent writes: nothing lost, nothing doubled.
func TestKillStorm(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 2})
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	killed := killRepeatedly(t, []*redistest.Server{dst}, "ferry-", 15, 300*time.Millisecond)
	// And once by age, the way CLIENT KILL MAXAGE picks its victims.
	time.Sleep(1200 * time.Millisecond)
	for _, c := range dst.ClientsNamed(t, "ferry-") {
		if c.Age >= 1 {
			dst.Do(t, "CLIENT", "KILL", "ID", strconv.FormatInt(c.ID, 10))
			killed++
		}
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	if killed < 15 {
		t.Fatalf("only %d connections killed", killed)
	}
	waitCaughtUp(t, src, dst, "default", 60*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestTargetRestarted(t *testing.T) {
	redistest.Require(t)
	for _, tc := range []struct {
		name  string
		empty bool
	}{{"with-data", false}, {"empty", true}} {
		t.Run(tc.name, func(t *testing.T) {
			src := redistest.Start(t)
			dst := redistest.Start(t, "--save", "3600 1")
			sc := src.Client(t)
			redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 4})
			stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
			ctx, cancel := context.WithCancel(context.Background())
			l := runLoad(ctx, t, sc)
			time.Sleep(700 * time.Millisecond)
			if tc.empty {
				dst.Kill(t)
				if err := removeDump(dst.Dir); err != nil {
					t.Fatal(err)
				}
				dst.Restart(t)
			} else {
				dst.Stop(t) // SHUTDOWN saves with --save configured
				dst.Restart(t)
			}
			time.Sleep(700 * time.Millisecond)
			cancel()
			waitCaughtUp(t, src, dst, "default", 60*time.Second)
			redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
			checkCounters(t, dst.Client(t), l)
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// restartBed is a sync whose target crashed and came back empty (a rewind:
// the job starts again from what the target holds) and was down again when
// that new start connected (a crash loop, a failover not finished).
type restartBed struct {
	src, dst *redistest.Server
	load     *load
	stopLoad context.CancelFunc
	stop     func() (Summary, error)
	ended    chan error
	state    func() State
}

func startRestartBed(t *testing.T) *restartBed {
	redistest.Require(t)
	b := &restartBed{src: redistest.Start(t), dst: redistest.Start(t), ended: make(chan error, 1)}
	sc := b.src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 5})
	retrying := newWatchLog(zerolog.TestWriter{T: t}, "could not open the job again")
	rewound := newWatchLog(retrying, "lost writes")
	observed := make(chan func() State, 1)
	b.stop = runSyncEnded(t, Options{Conf: testConf(t, b.src.URL(), b.dst.URL()), Log: zerolog.New(rewound).Level(zerolog.InfoLevel),
		Observe: func(s func() State) { observed <- s }}, b.ended)
	b.state = <-observed
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b.load, b.stopLoad = runLoad(ctx, t, sc), cancel
	redistest.WaitFor(t, 30*time.Second, func() bool { return markerOffset(t, b.dst, "default") > 0 }, "the sync to go live")

	b.dst.Kill(t)
	b.dst.Restart(t) // empty: no save configured
	wait := func(w *watchLog, what string) {
		t.Helper()
		select {
		case <-w.found:
		case err := <-b.ended:
			t.Fatalf("the sync ended (%v) instead of %s", err, what)
		case <-time.After(60 * time.Second):
			t.Fatalf("no %s in 60 s", what)
		}
	}
	wait(rewound, "rewind")
	// The new start comes a second after the rewind: the target is down by then.
	b.dst.Kill(t)
	wait(retrying, "retry of the new start")
	return b
}

// TestRestartedJobWaitsForTarget: the sync of a restartBed keeps trying
// instead of ending, shows why, and once the target is back it catches up:
// nothing lost, nothing doubled.
func TestRestartedJobWaitsForTarget(t *testing.T) {
	b := startRestartBed(t)
	select {
	case err := <-b.ended:
		t.Fatalf("the sync ended while the target was down: %v", err)
	case <-time.After(2 * time.Second):
	}
	if st := b.state(); st.Phase != status.PhaseConnecting || st.Restarting < time.Second || !strings.Contains(st.RestartError, "connection refused") {
		t.Errorf("while the target is down: phase %s, restarting for %s (%q); want connecting, ≥ 1s, the refused connection", st.Phase, st.Restarting, st.RestartError)
	}
	b.dst.Restart(t)

	b.stopLoad()
	waitCaughtUp(t, b.src, b.dst, "default", 60*time.Second)
	redistest.AssertSameData(t, []string{b.src.Addr}, []string{b.dst.Addr}, false, false)
	checkCounters(t, b.dst.Client(t), b.load)
	if st := b.state(); st.Restarting != 0 || st.Phase != status.PhaseStreaming {
		t.Errorf("caught up: phase %s, restarting for %s; want streaming, 0", st.Phase, st.Restarting)
	}
	if _, err := b.stop(); err != nil {
		t.Fatal(err)
	}
}

// TestStopWhileRestarting: a sync stopped while it cannot reach the target
// to start again holds nothing to flush — the target's markers are its
// resume point — so it ends at once and cleanly, and the next start resumes
// from the markers.
func TestStopWhileRestarting(t *testing.T) {
	b := startRestartBed(t)
	b.stopLoad()
	began := time.Now()
	if _, err := b.stop(); err != nil {
		t.Errorf("stopped while restarting: %v; want a clean stop", err)
	}
	if d := time.Since(began); d > 5*time.Second {
		t.Errorf("the stop took %s", d.Round(time.Millisecond))
	}
	b.dst.Restart(t)
	stop := runSync(t, Options{Conf: testConf(t, b.src.URL(), b.dst.URL()), Log: testLog(t)})
	waitCaughtUp(t, b.src, b.dst, "default", 60*time.Second)
	redistest.AssertSameData(t, []string{b.src.Addr}, []string{b.dst.Addr}, false, false)
	checkCounters(t, b.dst.Client(t), b.load)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func removeDump(dir string) error {
	err := os.Remove(filepath.Join(dir, "dump.rdb"))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}
