package job

import (
	"context"
	crand "crypto/rand"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// managedArgs make a server look like a managed service: no PSYNC, SYNC or
// CONFIG, keyspace notifications on in its configuration.
var managedArgs = []string{
	"--rename-command", "PSYNC", "",
	"--rename-command", "SYNC", "",
	"--rename-command", "CONFIG", "",
	"--notify-keyspace-events", "KEA",
}

// managedPair starts a source that looks like a managed service, an empty
// target, and a client of the source.
func managedPair(t *testing.T) (src, dst *redistest.Server, sc *redis.Client) {
	redistest.Require(t)
	src = redistest.Start(t, managedArgs...)
	return src, redistest.Start(t), src.Client(t)
}

// scanLoad writes the kinds of changes a scan reader must follow, in
// several dbs, until ctx is done.
func scanLoad(ctx context.Context, t *testing.T, c *redis.Client) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg := context.Background()
		c4 := redis.NewClient(&redis.Options{Addr: c.Options().Addr, DB: 4})
		defer c4.Close()
		for i := 0; ctx.Err() == nil; i++ {
			k := strings.Repeat("k", 1+i%3) + ":" + string(rune('a'+i%20))
			p := c.Pipeline()
			p.Incr(bg, "ctr:"+k)
			p.RPush(bg, "lst:"+k, i)
			p.HSet(bg, "h:"+k, "f", i)
			p.ZAdd(bg, "z:"+k, redis.Z{Score: float64(i), Member: i % 7})
			p.XAdd(bg, &redis.XAddArgs{Stream: "xs:" + k, Values: []any{"i", i}})
			p.Set(bg, "tmp:"+k, i, 0)
			if i%5 == 0 {
				p.Del(bg, "lst:"+k)
				p.Expire(bg, "h:"+k, time.Hour)
				p.PExpire(bg, "ctr:"+k, 3*time.Millisecond)
			}
			if i%7 == 0 {
				p.Rename(bg, "tmp:"+k, "renamed:"+k)
			}
			if _, err := p.Exec(bg); err != nil {
				t.Errorf("load: %v", err)
				return
			}
			p4 := c4.Pipeline()
			p4.Set(bg, "db4:"+k, i, 0)
			if i%300 == 150 {
				p4.FlushDB(bg)
			}
			if _, err := p4.Exec(bg); err != nil {
				t.Errorf("load: %v", err)
				return
			}
		}
	}()
	return done
}

func TestScanSourceSync(t *testing.T) {
	src, dst, sc := managedPair(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, DBs: []int{0, 2, 3}, Big: true, TTLPct: 20, Seed: 3})
	redistest.LoadFunctionLibrary(t, sc)

	observed := make(chan func() State, 1)
	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t), Observe: func(f func() State) { observed <- f }})
	state := <-observed
	ctx, cancel := context.WithCancel(context.Background())
	done := scanLoad(ctx, t, sc)
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	st := state()
	if len(st.Shards) != 1 || st.Shards[0].Reader.Mode != "scan" {
		t.Fatalf("shards %+v: want one read by scanning", st.Shards)
	}
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Keys == 0 {
		t.Fatalf("summary %+v", sum)
	}
}

// TestScanSubscriberKilled: the notification subscriber is killed during
// the load; the reader makes a new pass and the target converges.
func TestScanSubscriberKilled(t *testing.T) {
	src, dst, sc := managedPair(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, DBs: []int{0, 1}, TTLPct: 20, Seed: 5})
	c := testConf(t, src.URL(), dst.URL())
	c.Source.Reader = "scan"
	observed := make(chan func() State, 1)
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }})
	state := <-observed
	redistest.WaitFor(t, 30*time.Second, func() bool {
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "streaming"
	}, "the first pass")
	ctx, cancel := context.WithCancel(context.Background())
	done := scanLoad(ctx, t, sc)
	time.Sleep(500 * time.Millisecond)
	if n := sc.ClientKillByFilter(context.Background(), "TYPE", "pubsub").Val(); n != 1 {
		t.Fatalf("killed %d pubsub clients, want 1", n)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	if r := state().Shards[0].Reader; r.Rescans == 0 || r.Reconnects == 0 {
		t.Errorf("reader %+v: want a rescan after the subscriber was killed", r)
	}
	if sh := state().Status("j", "sync").Shards[0]; sh.Reader != "scan" || sh.Rescans == 0 || sh.ScanKeysTotal == 0 {
		t.Errorf("status shard %+v: want reader scan, rescans and the pass's key total", sh)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanClusterSource: a 3-master cluster that refuses PSYNC is read by
// one scanner per master while a load runs.
func TestScanClusterSource(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 0, managedArgs...)
	dst := redistest.Start(t)
	cc := src.Client(t)
	redistest.FillAllTypes(t, cc, redistest.FillOptions{Keys: 300, Big: true, TTLPct: 20, Seed: 9})
	c := testConf(t, "redis://"+src.Addrs()[0], dst.URL())
	c.Source.ScanBigValue = 64 << 10 // the big keys are read in pieces
	observed := make(chan func() State, 1)
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }})
	state := <-observed
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg := context.Background()
		for i := 0; ctx.Err() == nil; i++ {
			k := "{" + string(rune('a'+i%26)) + "}"
			p := cc.Pipeline()
			p.Incr(bg, k+"ctr")
			p.RPush(bg, k+"lst", i)
			p.HSet(bg, k+"h", "f", i)
			p.Set(bg, k+"tmp", i, 0)
			if i%5 == 0 {
				p.Del(bg, k+"lst")
				p.Expire(bg, k+"h", time.Hour)
			}
			if i%7 == 0 {
				p.Rename(bg, k+"tmp", k+"ren")
			}
			if _, err := p.Exec(bg); err != nil {
				t.Errorf("load: %v", err)
				return
			}
		}
	}()
	time.Sleep(2 * time.Second)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, src.Addrs(), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 30 * time.Second})
	st := state()
	if len(st.Shards) != 3 {
		t.Fatalf("%d shards, want 3", len(st.Shards))
	}
	var big int64
	for _, sh := range st.Shards {
		if sh.Reader.Mode != "scan" {
			t.Errorf("shard %s read by %q, want scan", sh.Name, sh.Reader.Mode)
		}
		big += sh.Reader.BigValues
	}
	if big == 0 {
		t.Error("no value was read in pieces")
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanLeastACL: the permissions the README lists for a scan source
// are enough.
func TestScanLeastACL(t *testing.T) {
	src, dst, sc := managedPair(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 1}, TTLPct: 20, Seed: 11})
	redistest.LoadFunctionLibrary(t, sc)
	src.Do(t, "ACL", "SETUSER", "ferry-scan", "on", ">pw", "-@all",
		"+scan", "+dump", "+pttl", "+info", "+select", "+psubscribe", "+subscribe", "+ping",
		"+client|id", "+client|tracking", "+client|setname", "+function|dump",
		"+set", "+del", "+rpush", "+sadd", "+hset", "+zadd", "+xadd", "+exists",
		"%R~*", "~__ferry:probe:*", "&__keyevent@*__:*", "&__redis__:invalidate")
	c := testConf(t, "redis://ferry-scan:pw@"+src.Addr, dst.URL())
	_, stop := runScanPassWithin(t, c, 30*time.Second)
	sc.Set(context.Background(), "live", "1", 0)
	sc.Del(context.Background(), "fill:db0:s:1")
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanBigValuesLive: values changed during the live phase whose DUMP
// payload is past the target's proto-max-bulk-len are rewritten as plain
// commands.
func TestScanBigValuesLive(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t, managedArgs...)
	dst := redistest.Start(t, "--proto-max-bulk-len", "1mb")
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 50, Seed: 12})
	// Random bytes: DUMP compresses repeated ones.
	noise := func(n int) string {
		b := make([]byte, n)
		crand.Read(b)
		return string(b)
	}
	// (A string cannot be longer than proto-max-bulk-len on the target.)
	before := make([]any, 0, 6000)
	for j := 0; j < 3000; j++ {
		before = append(before, strconv.Itoa(j), noise(1000))
	}
	sc.HSet(context.Background(), "big:before", before...)
	observed := make(chan func() State, 1)
	ended := make(chan error, 1)
	stop := runSyncEnded(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t), Observe: func(f func() State) { observed <- f }}, ended)
	state := <-observed
	redistest.WaitFor(t, 30*time.Second, func() bool {
		select {
		case err := <-ended:
			t.Fatalf("the sync ended: %v", err)
		default:
		}
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "streaming"
	}, "the first pass")
	ctx := context.Background()
	p := sc.Pipeline()
	for i := 0; i < 40; i++ {
		fields := make([]any, 0, 200)
		for j := 0; j < 100; j++ {
			fields = append(fields, strconv.Itoa(i*100+j), noise(300))
		}
		p.HSet(ctx, "big:hash", fields...)
		p.RPush(ctx, "big:list", noise(30000))
	}
	p.Expire(ctx, "big:hash", time.Hour)
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanClusterCutover: a cutover from a 3-master cluster read by
// scanning, under load: once ready, the target equals the paused source.
func TestScanClusterCutover(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 0, managedArgs...)
	dst := redistest.Start(t)
	cc := src.Client(t)
	redistest.FillAllTypes(t, cc, redistest.FillOptions{Keys: 200, TTLPct: 20, Seed: 13})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg := context.Background()
		for i := 0; ctx.Err() == nil; i++ {
			k := "{" + string(rune('a'+i%26)) + "}"
			p := cc.Pipeline()
			p.Incr(bg, k+"ctr")
			p.RPush(bg, k+"lst", i)
			p.HSet(bg, k+"h", "f", i)
			if i%5 == 0 {
				p.Del(bg, k+"lst")
			}
			p.Exec(bg) // held back by the pause, then refused or not: the digest is the check
		}
	}()
	defer func() {
		cancel()
		for _, n := range src.Nodes() {
			n.Do(t, "CLIENT", "UNPAUSE")
		}
		<-done
	}()
	time.Sleep(300 * time.Millisecond) // the load is under way when the migrate starts
	rctx, rcancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer rcancel()
	co := &Cutover{PauseMax: 20 * time.Second}
	sum, err := Run(rctx, Options{Conf: testConf(t, "redis://"+src.Addrs()[0], dst.URL()), Migrate: true, Cutover: co, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.CaughtUp {
		t.Fatal("the cutover never got ready")
	}
	redistest.AssertSameDataOpts(t, src.Addrs(), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true})
}

// TestScanClusterSourceFailover: a master of a cluster read by scanning is
// killed under load; its shard is read again from the promoted replica (a
// new pass) and the target converges.
func TestScanClusterSourceFailover(t *testing.T) {
	redistest.Require(t)
	src := redistest.StartCluster(t, 3, 1)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 34})
	c := testConf(t, "redis://"+src.Masters[0].Addr, dst.URL())
	c.Source.Reader = "scan"
	observed := make(chan func() State, 1)
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }})
	state := <-observed
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 30 * time.Second})
	replica := src.Replicas[0]
	ctx, cancel := context.WithCancel(context.Background())
	runLoadOpts(ctx, t, sc, true)
	time.Sleep(500 * time.Millisecond)
	src.Masters[0].Kill(t)
	redistest.WaitFor(t, 30*time.Second, func() bool { return replica.Info(t, "replication")["role"] == "master" }, "the replica to take over")
	time.Sleep(time.Second)
	cancel()
	src.Refresh(t)
	// The data may be equal before the shard's reader has reconnected to
	// the promoted replica; the rescan that follows the lost subscription
	// is what the test is about.
	redistest.WaitFor(t, 60*time.Second, func() bool {
		var rescans int64
		for _, sh := range state().Shards {
			rescans += sh.Reader.Rescans
		}
		return rescans > 0
	}, "a rescan after the failover")
	redistest.AssertSameDataOpts(t, masterAddrs(t, src), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: 60 * time.Second})
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanSwapDBAndFunctions: SWAPDB, function library changes and a
// FLUSHALL on the source after the pass publish no keyspace notification;
// the reader sees them (INFO commandstats, client tracking) and the target
// follows each.
func TestScanSwapDBAndFunctions(t *testing.T) {
	src, dst, sc := managedPair(t)
	ctx := context.Background()
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 1}, TTLPct: 20, Seed: 15})
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 50, DBs: []int{2}, Prefix: "other:", Seed: 16})
	redistest.LoadFunctionLibrary(t, sc)
	state, stop := runScanPass(t, testConf(t, src.URL(), dst.URL()))
	same := func(what string) {
		t.Helper()
		t.Log(what)
		redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	}
	same("after the first pass")
	src.Do(t, "SWAPDB", "0", "2")
	src.Do(t, "SWAPDB", "1", "5")
	same("after SWAPDB")
	if r := state().Shards[0].Reader; r.Rescans == 0 {
		t.Errorf("reader %+v: want a rescan after SWAPDB", r)
	}
	src.Do(t, "FUNCTION", "LOAD", "#!lua name=extra\nredis.register_function('extra_f', function() return 2 end)")
	same("after FUNCTION LOAD")
	src.Do(t, "FUNCTION", "DELETE", "extra")
	same("after FUNCTION DELETE")
	src.Do(t, "FUNCTION", "FLUSH")
	same("after FUNCTION FLUSH")
	sc.Set(ctx, "after:flush", "1", 0)
	src.Do(t, "FLUSHALL")
	sc.Set(ctx, "after:flushall", "1", 0)
	same("after FLUSHALL")
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanFlushWithoutTracking: a source user without CLIENT TRACKING
// cannot see flushes through invalidations; INFO commandstats shows them,
// and the target follows a FLUSHDB and a FLUSHALL.
func TestScanFlushWithoutTracking(t *testing.T) {
	src, dst, sc := managedPair(t)
	ctx := context.Background()
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 1}, TTLPct: 20, Seed: 17})
	src.Do(t, "ACL", "SETUSER", "notrack", "on", ">pw", "+@all", "-client|tracking", "~*", "&*")
	state, stop := runScanPass(t, testConf(t, "redis://notrack:pw@"+src.Addr, dst.URL()))
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	c1 := redis.NewClient(&redis.Options{Addr: src.Addr, DB: 1})
	defer c1.Close()
	if err := c1.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	src.Do(t, "FLUSHALL")
	sc.Set(ctx, "after", "1", 0)
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	if r := state().Shards[0].Reader; r.Rescans < 2 {
		t.Errorf("reader %+v: want a rescan after each flush", r)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanSwapDBDuringPass: a SWAPDB while the first pass reads the source
// (slowed down by a link with latency) is seen before migrate calls itself
// caught up: the target equals the source when the run returns.
func TestScanSwapDBDuringPass(t *testing.T) {
	src, dst, sc := managedPair(t)
	ctx := context.Background()
	for i := 0; i < 20000; i += 1000 {
		p := sc.Pipeline()
		for k := i; k < i+1000; k++ {
			p.Set(ctx, "k:"+strconv.Itoa(k), k, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
	}
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 50, DBs: []int{1}, Seed: 45})
	slow := redistest.NewDelayProxy(t, src.Addr, 40*time.Millisecond)
	c := testConf(t, slow.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	states := make(chan func() State, 1)
	type result struct {
		sum Summary
		err error
	}
	res := make(chan result, 1)
	rctx, rcancel := context.WithCancel(ctx)
	ran := make(chan struct{})
	defer func() {
		rcancel()
		<-ran
	}()
	go func() {
		defer close(ran)
		sum, err := Run(rctx, Options{Conf: c, Migrate: true, Log: testLog(t), Observe: func(f func() State) { states <- f }})
		res <- result{sum, err}
	}()
	state := <-states
	redistest.WaitFor(t, 30*time.Second, func() bool {
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "scan" && st.Shards[0].Reader.ScanKeys > 0
	}, "the pass under way")
	src.Do(t, "SWAPDB", "0", "1")
	var r result
	select {
	case r = <-res:
	case <-time.After(60 * time.Second):
		t.Fatal("the migrate did not end")
	}
	if r.err != nil || !r.sum.CaughtUp {
		t.Fatalf("migrate: %v (caught up %v)", r.err, r.sum.CaughtUp)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	if n := state().Shards[0].Reader.Rescans; n == 0 {
		t.Error("no rescan after the SWAPDB")
	}
}
