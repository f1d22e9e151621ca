package job

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// masterAddrs lists a cluster's masters (as they are now).
func masterAddrs(t *testing.T, c *redistest.Cluster) []string {
	return clusterMasterAddrs(t, c)
}

func sumInfo(t *testing.T, servers []*redistest.Server, field string) int64 {
	var n int64
	for _, s := range servers {
		if !s.Running() {
			continue
		}
		v, _ := strconv.ParseInt(s.Info(t, "stats")[field], 10, 64)
		n += v
	}
	return n
}

func TestClusterSourceToStandalone(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 0)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, Big: true, TTLPct: 10, Seed: 31})
	c := testConf(t, "redis://"+src.Masters[0].Addr, dst.URL())
	var state func() State
	var streams atomic.Int64 // what the process sizes its scheduler by
	var snapshots, applying atomic.Int64
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f },
		OnStreams: func(n int) { streams.Store(int64(n)) },
		OnSnapshot: func(on bool) {
			if on {
				snapshots.Add(1)
				applying.Add(1)
			} else {
				applying.Add(-1)
			}
		}})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(2 * time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
	checkCounters(t, dst.Client(t), l)
	if n := len(state().Shards); n != 3 {
		t.Errorf("status shows %d source shards, want 3", n)
	}
	if n := streams.Load(); n != 3 {
		t.Errorf("OnStreams was told %d streams, want 3 (one per source shard)", n)
	}
	if n, on := snapshots.Load(), applying.Load(); n != 3 || on != 0 {
		t.Errorf("OnSnapshot: %d snapshots started, %d not ended once live; want 3 and 0", n, on)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestClusterSourceToClusterOtherLayout(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 0)
	dst := redistest.StartCluster(t, 3, 0)
	// A different slot layout on the target.
	var ids []string
	for _, m := range dst.Masters {
		ids = append(ids, m.Do(t, "CLUSTER", "MYID").(string))
	}
	reshard(t, dst.Masters[0].Addr, ids[0], ids[2], 2000)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, Seed: 32})
	c := testConf(t, "redis://"+src.Masters[0].Addr, "redis://"+dst.Masters[0].Addr)
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(2 * time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), masterAddrs(t, dst), redistest.CompareOptions{SrcCluster: true, DstCluster: true, Wait: 60 * time.Second})
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestClusterSourceFailover: a source shard fails over during load, once
// gracefully (CLUSTER FAILOVER) and once by a crash of its master: ferry
// continues on the new master with a partial resync.
func TestClusterSourceFailover(t *testing.T) {
	redistest.Require(t)
	for _, crash := range []bool{false, true} {
		name := "graceful"
		if crash {
			name = "sigkill"
		}
		t.Run(name, func(t *testing.T) {
			src := redistest.StartCluster(t, 3, 1, "--repl-backlog-size", "64mb")
			dst := redistest.Start(t)
			sc := src.Client(t)
			redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 33})
			stop := runSync(t, Options{Conf: testConf(t, "redis://"+src.Masters[0].Addr, dst.URL()), Log: testLog(t)})
			redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 30 * time.Second})
			replica := src.Replicas[0]
			survivors := src.Nodes()
			if crash {
				survivors = nil
				for _, n := range src.Nodes() {
					if n != src.Masters[0] {
						survivors = append(survivors, n)
					}
				}
			}
			fullBefore := sumInfo(t, survivors, "sync_full")
			partialBefore := sumInfo(t, []*redistest.Server{replica}, "sync_partial_ok")

			ctx, cancel := context.WithCancel(context.Background())
			l := runLoadOpts(ctx, t, sc, crash)
			time.Sleep(500 * time.Millisecond)
			if crash {
				// The load keeps going, but the crash falls when the
				// replica holds every write ferry may have: a master
				// killed between its writes to two replicas can leave
				// ferry ahead of the replica that takes over, and ferry
				// must then resync in full (the new history branched
				// off below its position), which is not what this case
				// checks. Writes are paused; replication is not.
				m := src.Masters[0]
				m.Do(t, "CLIENT", "PAUSE", "10000", "WRITE")
				redistest.WaitFor(t, 10*time.Second, func() bool {
					return replica.Info(t, "replication")["master_repl_offset"] == m.Info(t, "replication")["master_repl_offset"]
				}, "the replica to hold the master's every write")
				m.Kill(t)
			} else {
				replica.Do(t, "CLUSTER", "FAILOVER")
			}
			redistest.WaitFor(t, 30*time.Second, func() bool { return replica.Info(t, "replication")["role"] == "master" }, "the replica to take over")
			time.Sleep(2 * time.Second)
			cancel()
			src.Refresh(t)
			redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
			if !crash {
				// After a crash the load cannot know whether its last
				// write, whose reply was lost, was applied: the digest
				// above (counters included) is the check then.
				checkCounters(t, dst.Client(t), l)
			}
			if got := sumInfo(t, []*redistest.Server{replica}, "sync_partial_ok"); got <= partialBefore {
				t.Errorf("the promoted replica counts no partial resync (sync_partial_ok %d → %d)", partialBefore, got)
			}
			// The old master, when it comes back as a replica, may full-sync
			// from the new one; ferry must not have.
			fullAfter := sumInfo(t, survivors, "sync_full")
			if !crash && fullAfter > fullBefore+1 {
				t.Errorf("sync_full went from %d to %d: ferry did a full resync", fullBefore, fullAfter)
			}
			if crash && fullAfter != fullBefore {
				t.Errorf("sync_full went from %d to %d: ferry did a full resync", fullBefore, fullAfter)
			}
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestReadFromReplica(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 1)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 34})
	c := testConf(t, "redis://"+src.Masters[0].Addr, dst.URL())
	c.Source.ReadFrom = "replica"
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	time.Sleep(time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
	checkCounters(t, dst.Client(t), l)
	for _, m := range src.Masters {
		if cs := m.ClientsNamed(t, "ferry-reader-"); len(cs) > 0 {
			t.Errorf("master %s has ferry's reader attached: %+v", m.Addr, cs)
		}
	}
	readers := 0
	for _, r := range src.Replicas {
		readers += len(r.ClientsNamed(t, "ferry-reader-"))
	}
	if readers != 3 {
		t.Errorf("%d ferry readers on the replicas, want 3", readers)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSentinelSourceFailover(t *testing.T) {
	redistest.Require(t)
	master := redistest.Start(t, "--repl-backlog-size", "64mb")
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.Port), "--repl-backlog-size", "64mb")
	redistest.WaitFor(t, 10*time.Second, func() bool {
		return replica.Info(t, "replication")["master_link_status"] == "up"
	}, "the replica to sync")
	sen := redistest.StartSentinel(t, "mymaster", master.Addr)
	dst := redistest.Start(t)
	mc := master.Client(t)
	redistest.FillAllTypes(t, mc, redistest.FillOptions{Keys: 200, Seed: 35})
	c := testConf(t, "sentinel://"+sen.Addr+"/mymaster", dst.URL())
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	redistest.AssertSameDataOpts(t, []string{master.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})

	// Sentinel needs to have seen the replica before it can fail over.
	sc := sen.Client(t)
	redistest.WaitFor(t, 20*time.Second, func() bool {
		rs, err := sc.Replicas(context.Background(), "mymaster").Result()
		return err == nil && len(rs) > 0
	}, "sentinel to discover the replica")
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, mc)
	time.Sleep(500 * time.Millisecond)
	cancel() // the load writes to the old master; stop it before the failover
	time.Sleep(200 * time.Millisecond)
	if err := sc.Failover(context.Background(), "mymaster").Err(); err != nil {
		t.Fatal(err)
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return replica.Info(t, "replication")["role"] == "master" }, "sentinel to promote the replica")
	ctx2, cancel2 := context.WithCancel(context.Background())
	l2 := runLoad(ctx2, t, replica.Client(t))
	time.Sleep(time.Second)
	cancel2()
	redistest.AssertSameDataOpts(t, []string{replica.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	_ = l
	checkCounters(t, dst.Client(t), mergeLoads(l, l2))
	if n, _ := strconv.ParseInt(replica.Info(t, "stats")["sync_partial_ok"], 10, 64); n < 1 {
		t.Errorf("ferry did not continue on the new master with a partial resync")
	}
	if _, err := stop(); err != nil && !strings.Contains(err.Error(), "context") {
		t.Fatal(err)
	}
}

// mergeLoads adds up two loads' counters (the second ran on the new master).
func mergeLoads(a, b *load) *load {
	out := &load{counters: map[string]int64{}, lists: map[string]int64{}}
	for _, l := range []*load{a, b} {
		l.mu.Lock()
		for k, v := range l.counters {
			out.counters[k] += v
		}
		for k, v := range l.lists {
			out.lists[k] += v
		}
		l.mu.Unlock()
	}
	return out
}

// TestClusterSourceResharded moves slots between the source's shards while
// ferry follows them under load: every key ends up on the target exactly as
// on the source, even though each moved key appears as a RESTORE in one
// shard's stream and a DEL in another's, applied with independent lags.
func TestClusterSourceResharded(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 0)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, Seed: 36})
	c := testConf(t, "redis://"+src.Masters[0].Addr, dst.URL())
	stop := runSync(t, Options{Conf: c, Log: testLog(t)})
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 30 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	var ids []string
	for _, m := range src.Masters {
		ids = append(ids, m.Do(t, "CLUSTER", "MYID").(string))
	}
	reshard(t, src.Masters[0].Addr, ids[0], ids[1], 2000)
	reshard(t, src.Masters[1].Addr, ids[1], ids[2], 1000)
	time.Sleep(500 * time.Millisecond)
	cancel()
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
	checkCounters(t, dst.Client(t), l)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}
