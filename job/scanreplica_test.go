package job

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// startReplicated starts a master and one replica of it, in sync; args go
// to both, replicaArgs to the replica too.
func startReplicated(t *testing.T, args, replicaArgs []string) (master, replica *redistest.Server) {
	t.Helper()
	master = redistest.Start(t, args...)
	replica = redistest.Start(t, slices.Concat([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, args, replicaArgs)...)
	waitReplicated(t, master, replica)
	return master, replica
}

// waitReplicated waits until replica is linked to master and has
// processed everything it took.
func waitReplicated(t *testing.T, master, replica *redistest.Server) {
	t.Helper()
	redistest.WaitFor(t, 30*time.Second, func() bool {
		r := replica.Info(t, "replication")
		return r["master_link_status"] == "up" && r["slave_repl_offset"] == master.Info(t, "replication")["master_repl_offset"]
	}, "the replica to sync")
}

// ferryClients are the names of ferry's connections to s.
func ferryClients(t *testing.T, s *redistest.Server) []string {
	var names []string
	for _, c := range s.ClientsNamed(t, "ferry-") {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return names
}

// onMasterOnly: of ferry's connections, a master read through its replica
// sees the scan reader's probe connection (probe writes, the barrier's
// offsets) and control connections only.
func checkReplicaRead(t *testing.T, master, replica []string, probe bool) {
	t.Helper()
	for _, want := range []string{"ferry-reader-0", "ferry-subscriber-0", "ferry-monitor-0"} {
		if !slices.Contains(replica, want) {
			t.Errorf("replica: ferry's connections %q lack %s", replica, want)
		}
		if slices.Contains(master, want) {
			t.Errorf("master: ferry's connections %q include %s", master, want)
		}
	}
	for _, n := range master {
		if !strings.HasPrefix(n, "ferry-probe-") && !strings.HasPrefix(n, "ferry-ctl-") {
			t.Errorf("master: ferry's connections %q include %s", master, n)
		}
	}
	if probe && !slices.Contains(master, "ferry-probe-0") {
		t.Errorf("master: ferry's connections %q lack ferry-probe-0", master)
	}
}

// TestScanReplicaSync: read_from = "replica" with the scan reader, on a
// master and replica that forbid CONFIG (notifications on in the replica's
// configuration only): the replica is read (big values in pieces, its
// keyspace notifications, a FLUSHDB replicated to it) while the master
// takes a write load, and the probe's writes go to the master. The replica
// is then promoted: the reader reads it no longer, logs why, and once it
// is a replica in sync again reads it anew; the target converges.
func TestScanReplicaSync(t *testing.T) {
	redistest.Require(t)
	master, replica := startReplicated(t, []string{"--rename-command", "CONFIG", ""}, []string{"--notify-keyspace-events", "KEA"})
	dst := redistest.Start(t)
	mc := master.Client(t)
	redistest.FillAllTypes(t, mc, redistest.FillOptions{Keys: 200, DBs: []int{0, 2}, Big: true, TTLPct: 20, Seed: 51})
	waitReplicated(t, master, replica)
	c := testConf(t, master.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ReadFrom = conf.ReadFromReplica
	c.Source.ScanBigValue = 64 * conf.KiB
	observed := make(chan func() State, 1)
	ended := make(chan error, 1)
	stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }}, ended)
	state := <-observed
	streaming := func() bool {
		select {
		case err := <-ended:
			t.Fatalf("the sync ended: %v", err)
		default:
		}
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "streaming"
	}
	redistest.WaitFor(t, 60*time.Second, streaming, "the first pass")
	ctx, cancel := context.WithCancel(context.Background())
	done := scanLoad(ctx, t, mc)
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{master.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	r := state().Shards[0].Reader
	if r.Mode != "scan" || r.Addr != replica.Addr || r.BigValues == 0 {
		t.Errorf("reader %+v: want the replica %s scanned, big values in pieces", r, replica.Addr)
	}
	checkReplicaRead(t, ferryClients(t, master), ferryClients(t, replica), true)

	// The replica is promoted: its notifications no longer follow the
	// master.
	before := state().Shards[0].Reader
	replica.Do(t, "REPLICAOF", "NO", "ONE")
	redistest.WaitFor(t, 10*time.Second, func() bool {
		return state().Shards[0].Reader.Reconnects > before.Reconnects
	}, "the reader to leave the promoted replica")
	if e := state().Shards[0].Reader.LastError; !strings.Contains(e, "promoted") {
		t.Errorf("the reader's last error %q: want it to say the replica was promoted", e)
	}
	mc.Set(ctx, "while-promoted", "1", 0)
	mc.Del(ctx, "fill:db0:str:ttl-s")
	time.Sleep(500 * time.Millisecond)
	replica.Do(t, "REPLICAOF", "127.0.0.1", strconv.Itoa(master.Port))
	waitReplicated(t, master, replica)
	mc.Set(ctx, "after", "1", 0)
	redistest.AssertSameDataOpts(t, []string{master.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	redistest.WaitFor(t, 30*time.Second, streaming, "the pass after the promotion")
	if r := state().Shards[0].Reader; r.Rescans <= before.Rescans || r.Addr != replica.Addr {
		t.Errorf("reader %+v: want a new pass over the replica %s", r, replica.Addr)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanReplicaCutover: a migrate with --cutover from a master's replica
// read by scanning, under a write load on the master: the barrier waits
// for the replica to catch up with the paused master, so once ready the
// target equals the master. ferry sets notify-keyspace-events on the
// replica only, and restores it on exit.
func TestScanReplicaCutover(t *testing.T) {
	redistest.Require(t)
	master, replica := startReplicated(t, nil, nil)
	dst := redistest.Start(t)
	mc := master.Client(t)
	redistest.FillAllTypes(t, mc, redistest.FillOptions{Keys: 200, Big: true, TTLPct: 20, Seed: 52})
	waitReplicated(t, master, replica)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runLoadOpts(ctx, t, mc, true)
	time.Sleep(300 * time.Millisecond) // the load is under way when the migrate starts

	c := testConf(t, master.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ReadFrom = conf.ReadFromReplica
	c.Source.ScanBigValue = 64 * conf.KiB
	var mu sync.Mutex
	var onMaster, onReplica []string
	var notify string
	co := &Cutover{
		PauseMax: 10 * time.Second,
		Ready: func(CutoverReport) {
			mu.Lock()
			defer mu.Unlock()
			onMaster, onReplica = ferryClients(t, master), ferryClients(t, replica)
			notify = replica.Do(t, "CONFIG", "GET", "notify-keyspace-events").([]any)[1].(string)
		},
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	sum, err := Run(rctx, Options{Conf: c, Migrate: true, Cutover: co, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.CaughtUp {
		t.Fatal("the cutover never got ready")
	}
	// Still paused: the master and the target hold the same data.
	redistest.AssertSameData(t, []string{master.Addr}, []string{dst.Addr}, false, false)
	mu.Lock()
	defer mu.Unlock()
	checkReplicaRead(t, onMaster, onReplica, true)
	if !strings.Contains(notify, "E") {
		t.Errorf("the replica's notify-keyspace-events was %q during the migrate", notify)
	}
	for _, s := range []*redistest.Server{master, replica} {
		if v := s.Do(t, "CONFIG", "GET", "notify-keyspace-events").([]any)[1]; v != "" {
			t.Errorf("%s: notify-keyspace-events %q after the migrate, want it restored", s.Addr, v)
		}
	}
	cancel()
	master.Do(t, "CLIENT", "UNPAUSE")
}

// TestScanClusterReplicas: a 3-master cluster read by scanning each
// master's replica (after READONLY; big values in pieces) under a write
// load on the masters.
func TestScanClusterReplicas(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 1)
	dst := redistest.Start(t)
	cc := src.Client(t)
	redistest.FillAllTypes(t, cc, redistest.FillOptions{Keys: 200, Big: true, TTLPct: 20, Seed: 53})
	c := testConf(t, "redis://"+src.Masters[0].Addr, dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ReadFrom = conf.ReadFromReplica
	c.Source.ScanBigValue = 64 * conf.KiB
	observed := make(chan func() State, 1)
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }})
	state := <-observed
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, cc)
	time.Sleep(2 * time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
	checkCounters(t, dst.Client(t), l)
	var big int64
	replicas := map[string]bool{}
	for _, r := range src.Replicas {
		replicas[r.Addr] = true
	}
	for _, sh := range state().Shards {
		if sh.Reader.Mode != "scan" || !replicas[sh.Reader.Addr] {
			t.Errorf("shard %s: reader %s of %s, want scan of a replica", sh.Name, sh.Reader.Mode, sh.Reader.Addr)
		}
		big += sh.Reader.BigValues
	}
	if big == 0 {
		t.Error("no value was read in pieces")
	}
	for _, m := range src.Masters {
		for _, n := range ferryClients(t, m) {
			if strings.HasPrefix(n, "ferry-reader-") || strings.HasPrefix(n, "ferry-subscriber-") || strings.HasPrefix(n, "ferry-monitor-") {
				t.Errorf("master %s has ferry's %s", m.Addr, n)
			}
		}
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanReplicaLagFailsCutover: read from a replica whose link to its
// master lags 6 s, a cutover with cutover_pause_max 4 s cannot see every
// write made before the pause in time: it fails with a message naming the
// lagging replica, and the source takes writes again before the pause
// would have run out.
func TestScanReplicaLagFailsCutover(t *testing.T) {
	redistest.Require(t)
	master := redistest.Start(t)
	link := redistest.NewDelayProxy(t, master.Addr, 0)
	_, port, _ := net.SplitHostPort(link.Addr)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", port, "--notify-keyspace-events", "KEA")
	waitReplicated(t, master, replica)
	// In sync: from now on what the master sends reaches the replica 6 s
	// later.
	link.SetDelay(6 * time.Second)
	dst := redistest.Start(t)
	mc := master.Client(t)
	redistest.FillAllTypes(t, mc, redistest.FillOptions{Keys: 50, Seed: 44})
	ctx, cancel := context.WithCancel(context.Background())
	done := scanLoad(ctx, t, mc)
	defer func() {
		cancel()
		master.Do(t, "CLIENT", "UNPAUSE")
		<-done
	}()
	c := testConf(t, master.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ReadFrom = conf.ReadFromReplica
	co := &Cutover{PauseMax: 4 * time.Second}
	var pausedAt time.Time
	co.paused = func() { pausedAt = time.Now() }
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	_, err := Run(rctx, Options{Conf: c, Migrate: true, Cutover: co, Log: testLog(t)})
	if err == nil || !errors.Is(err, ErrCutover) || !strings.Contains(err.Error(), "replica "+replica.Addr+" lags behind its master") {
		t.Fatalf("err = %v, want a failed cutover naming the lagging replica %s", err, replica.Addr)
	}
	t.Logf("the failed cutover: %v", err)
	// The barrier gives up at 80% of the pause: a write that goes through
	// before the pause's end was let through by the unpause.
	wctx, wcancel := context.WithDeadline(context.Background(), pausedAt.Add(co.PauseMax-100*time.Millisecond))
	defer wcancel()
	if err := mc.Set(wctx, "after", "1", 0).Err(); err != nil {
		t.Errorf("a write %s after the pause began: %v", time.Since(pausedAt).Round(time.Millisecond), err)
	}
}
