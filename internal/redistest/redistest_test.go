package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func pidGone(pid int) bool { return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) }

func assertGone(t *testing.T, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if !pidGone(pid) {
			t.Errorf("redis-server pid %d still exists", pid)
		}
	}
}

func TestMergeArgs(t *testing.T) {
	got, err := mergeArgs([]string{"--save", "", "--appendonly", "no", "--bind", "127.0.0.1"},
		[]string{"--save", "3600 1", "--save", "60 100", "--maxmemory", "10mb"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"--appendonly", "no", "--bind", "127.0.0.1", "--save", "3600 1", "--save", "60 100", "--maxmemory", "10mb"}
	if !slices.Equal(got, want) {
		t.Fatalf("mergeArgs = %q, want %q", got, want)
	}
	if err := checkManaged([]string{"--port", "1"}); err == nil {
		t.Fatal("--port accepted")
	}
	if _, err := splitDirectives([]string{"save"}); err == nil {
		t.Fatal("value without directive accepted")
	}
}

func TestServerLifecycle(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("run", func(t *testing.T) {
		s := Start(t, "--save", "3600 1")
		pids = append(pids, s.PID)
		if got := s.Do(t, "CONFIG", "GET", "save").([]any); got[1] != "3600 1" {
			t.Fatalf("save = %v", got)
		}
		if s.URL() != "redis://127.0.0.1:"+itoa(s.Port) || s.Addr != "127.0.0.1:"+itoa(s.Port) {
			t.Fatalf("URL %s Addr %s", s.URL(), s.Addr)
		}
		if s.Do(t, "GET", "nothing") != nil {
			t.Fatal("GET of a missing key is not nil")
		}
		s.Do(t, "SET", "k", "v1")

		// graceful stop saves (save point configured); restart loads dump.rdb
		pid := s.PID
		s.Stop(t)
		assertGone(t, pid)
		if s.Running() {
			t.Fatal("Running after Stop")
		}
		if _, err := os.Stat(filepath.Join(s.Dir, "dump.rdb")); err != nil {
			t.Fatalf("no dump.rdb after Stop with a save point: %v", err)
		}
		s.Stop(t) // no-op
		s.Restart(t)
		pids = append(pids, s.PID)
		if s.PID == pid {
			t.Fatal("same PID after restart")
		}
		if got := s.Do(t, "GET", "k"); got != "v1" {
			t.Fatalf("after restart GET k = %v", got)
		}

		// SIGKILL: nothing saved
		s.Do(t, "SET", "k", "v2")
		pid = s.PID
		s.Kill(t)
		assertGone(t, pid)
		s.Restart(t, "--save", "")
		pids = append(pids, s.PID)
		if got := s.Do(t, "GET", "k"); got != "v1" {
			t.Fatalf("after kill+restart GET k = %v, want v1 from the last save", got)
		}
		if got := s.Do(t, "CONFIG", "GET", "save").([]any); got[1] != "" {
			t.Fatalf("restart args did not override: save = %v", got)
		}
		if !strings.Contains(s.Log(), "Ready to accept connections") {
			t.Fatalf("log: %s", s.Log())
		}
		if s.Info(t, "server")["tcp_port"] != itoa(s.Port) {
			t.Fatal("INFO server tcp_port")
		}
		// Restart of a running server stops it first.
		pid = s.PID
		s.Restart(t)
		assertGone(t, pid)
		pids = append(pids, s.PID)
	})
	assertGone(t, pids...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestStartManyInParallel(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var pids []int
	t.Run("run", func(t *testing.T) {
		ports := map[int]bool{}
		var wg sync.WaitGroup
		servers := make([]*Server, 6)
		for i := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := startServer(t, t.TempDir(), serverBinary(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				servers[i] = s
				mu.Lock()
				pids = append(pids, s.PID)
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, s := range servers {
			if s == nil {
				t.FailNow()
			}
			if ports[s.Port] {
				t.Fatalf("port %d handed out twice", s.Port)
			}
			ports[s.Port] = true
			if s.Do(t, "PING") != "PONG" {
				t.Fatal("no PONG")
			}
		}
	})
	assertGone(t, pids...)
}

func TestClients(t *testing.T) {
	t.Parallel()
	s := Start(t)
	ctx := context.Background()
	var conns []*redis.Conn
	for _, name := range []string{"ferry-writer-1", "ferry-reader-1", "other"} {
		c := s.Client(t).Conn()
		if err := c.ClientSetName(ctx, name).Err(); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if _, err := conns[0].Select(ctx, 3).Result(); err != nil {
		t.Fatal(err)
	}
	got := s.ClientsNamed(t, "ferry-")
	if len(got) != 2 {
		t.Fatalf("ClientsNamed(ferry-) = %+v", got)
	}
	for _, c := range got {
		if c.ID == 0 || c.Addr == "" || c.Cmd == "" || c.Flags == "" {
			t.Fatalf("badly parsed: %+v", c)
		}
		if c.Name == "ferry-writer-1" && c.DB != 3 {
			t.Fatalf("db not parsed: %+v", c)
		}
	}
	if n := s.KillClients(t, "ferry-"); n != 2 {
		t.Fatalf("KillClients = %d", n)
	}
	if got := s.ClientsNamed(t, "ferry-"); len(got) != 0 {
		t.Fatalf("after kill: %+v", got)
	}
	if err := conns[0].Ping(ctx).Err(); err == nil {
		t.Fatal("killed connection still works")
	}
	if err := conns[2].Ping(ctx).Err(); err != nil {
		t.Fatalf("other connection was killed: %v", err)
	}
	if len(s.ClientsNamed(t, "other")) != 1 {
		t.Fatal("other missing")
	}
}

// copyAll copies every key (all dbs) and the functions from src to dst with DUMP/RESTORE ABSTTL.
func copyAll(t *testing.T, src, dst *Server) {
	t.Helper()
	ctx := context.Background()
	sc, dc := src.Client(t), dst.Client(t)
	fn, err := sc.FunctionDump(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.FunctionRestore(ctx, fn).Err(); err != nil {
		t.Fatal(err)
	}
	for k := range src.Info(t, "keyspace") {
		db := 0
		for _, ch := range strings.TrimPrefix(k, "db") {
			db = db*10 + int(ch-'0')
		}
		s, d := sc.Conn(), dc.Conn()
		s.Select(ctx, db)
		d.Select(ctx, db)
		iter := s.Scan(ctx, 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			key := iter.Val()
			payload, err := s.Dump(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			exp := s.Do(ctx, "PEXPIRETIME", key).Val().(int64)
			if exp < 0 {
				exp = 0
			}
			if err := d.Do(ctx, "RESTORE", key, exp, payload, "ABSTTL").Err(); err != nil {
				t.Fatalf("RESTORE %q: %v", key, err)
			}
		}
		if iter.Err() != nil {
			t.Fatal(iter.Err())
		}
		s.Select(ctx, 0)
		d.Select(ctx, 0)
		s.Close()
		d.Close()
	}
}

func digest(t *testing.T, cluster bool, addrs ...string) *Digest {
	t.Helper()
	d, err := TakeDigest(context.Background(), addrs, cluster)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestFillDigestDumpRestore(t *testing.T) {
	t.Parallel()
	src, dst, again := Start(t), Start(t), Start(t)
	opt := FillOptions{Keys: 400, DBs: []int{0, 1, 5}, Big: true, Seed: 7, TTLPct: 20}
	began := time.Now()
	st := FillAllTypes(t, src.Client(t), opt)
	LoadFunctionLibrary(t, src.Client(t))
	t.Logf("fill: %d keys, %d elements, %d with TTL in %v", st.Keys, st.Elements, st.TTL, time.Since(began))
	if !st.PlainList || len(st.BigKeys) != 6 || st.TTL == 0 {
		t.Fatalf("stats: %+v", st)
	}

	// every encoding of Redis 7.0 is present
	ctx := context.Background()
	enc := map[string]bool{}
	for _, db := range opt.DBs {
		c := src.Client(t).Conn()
		c.Select(ctx, db)
		iter := c.Scan(ctx, 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			enc[c.ObjectEncoding(ctx, iter.Val()).Val()] = true
		}
		c.Close()
	}
	for _, e := range []string{"raw", "embstr", "int", "quicklist", "intset", "hashtable", "listpack", "skiplist", "stream"} {
		if !enc[e] {
			t.Errorf("no key with encoding %s (have %v)", e, enc)
		}
	}

	t0 := time.Now()
	copyAll(t, src, dst)
	t.Logf("dump/restore copy in %v", time.Since(t0))
	t0 = time.Now()
	ds := digest(t, false, src.Addr)
	t.Logf("digest of %d keys in %v", ds.Total(), time.Since(t0))
	dd := digest(t, false, dst.Addr)
	if diffs := ds.Diff(dd, 0); len(diffs) != 0 {
		t.Fatalf("DUMP/RESTORE copy differs:\n%s", strings.Join(diffs, "\n"))
	}
	if ds.Sum != dd.Sum || len(ds.Sum) != 64 {
		t.Fatalf("sums %s %s", ds.Sum, dd.Sum)
	}
	for db, types := range st.PerDB {
		for typ, n := range types {
			if ds.Counts[db][typ] != n {
				t.Errorf("db%d %s: digest has %d keys, fill wrote %d", db, typ, ds.Counts[db][typ], n)
			}
		}
	}
	if ds.Total() != st.Keys {
		t.Errorf("digest has %d keys, fill wrote %d", ds.Total(), st.Keys)
	}
	if ds.Functions["ferrytest"] == "" {
		t.Errorf("functions not digested: %v", ds.Functions)
	}
	k := ds.Keys["0/fill:db0:big:stream"]
	if k.Len != 19998 || len(k.Fields) < 19998 {
		t.Errorf("big stream: len %d, %d fields", k.Len, len(k.Fields))
	}
	// The key was written with an hour to live some time after the fill
	// began (a loaded machine takes tens of seconds to fill and copy).
	if k := ds.Keys["0/fill:db0:str:ttl-ms"]; k.TTL < time.Hour-time.Since(began)-time.Second || k.TTL > time.Hour+time.Second || k.ExpireAt == 0 {
		t.Errorf("ttl-ms: %+v (%v after the fill began)", k.TTL, time.Since(began))
	}

	// deterministic for a seed; markers ignored
	FillAllTypes(t, again.Client(t), opt)
	LoadFunctionLibrary(t, again.Client(t))
	again.Do(t, "SET", "__ferry:fence", "123")
	// filled at another time: expiry times differ by the time between the fills
	AssertSameDataOpts(t, []string{src.Addr}, []string{again.Addr}, CompareOptions{TTLTolerance: time.Minute})
	if da := digest(t, false, again.Addr); da.Sum != ds.Sum {
		t.Fatal("same seed, different Sum")
	}
}

// fakeTB captures Fatalf.
type fakeTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func runFake(t *testing.T, fn func(tb testing.TB)) string {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.msg
}

func TestDiffReportsEachKind(t *testing.T) {
	t.Parallel()
	src, dst := Start(t), Start(t)
	opt := FillOptions{Keys: 50, DBs: []int{0, 2}, Seed: 3, TTLPct: 30}
	FillAllTypes(t, src.Client(t), opt)
	FillAllTypes(t, dst.Client(t), opt)
	LoadFunctionLibrary(t, src.Client(t))
	LoadFunctionLibrary(t, dst.Client(t))
	AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, CompareOptions{TTLTolerance: time.Minute})

	// plant one difference of each kind on the target
	k := func(n string) string { return "fill:db0:" + n }
	dst.Do(t, "DEL", k("str:raw"))
	dst.Do(t, "SET", "extra", "x")
	dst.Do(t, "HSET", k("hash:small"), "n", "43")
	dst.Do(t, "LSET", k("list:small"), 1, "one")
	dst.Do(t, "ZADD", k("zset:small"), "2.75", "tie-b")
	dst.Do(t, "PERSIST", k("str:ttl-s"))
	dst.Do(t, "EXPIRE", k("str:embstr"), 3600)
	dst.Do(t, "PEXPIRE", k("hash:ttl"), 100_000_000)
	dst.Do(t, "XGROUP", "DESTROY", k("stream:basic"), "g2")
	dst.Do(t, "XACK", k("stream:basic"), "g3", "1700000000000-21")
	dst.Do(t, "SET", k("str:100k"), strings.Repeat("ferry-compressible-", 100*1024/19+1)[:100*1024-1]+"!")
	dst.Do(t, "SREM", k("set:hashtable"), "member-5")
	dst.Do(t, "DEL", k("zset:ttl"))
	dst.Do(t, "SET", k("zset:ttl"), "now a string")
	dst.Do(t, "FUNCTION", "DELETE", "ferrytest")

	ds, dd := digest(t, false, src.Addr), digest(t, false, dst.Addr)
	diffs := ds.Diff(dd, time.Minute)
	all := strings.Join(diffs, "\n")
	t.Logf("planted differences:\n%s", all)
	for _, want := range []string{
		`function library "ferrytest": missing on target`,
		`db0 key "extra": extra on target (string)`,
		`db0 key "fill:db0:str:raw": missing on target (string)`,
		`db0 key "fill:db0:hash:small": hash field "n": "42" != "43"`,
		`db0 key "fill:db0:list:small": list element 1: "1" != "one"`,
		`db0 key "fill:db0:zset:small": zset member "tie-b": score 1 != 2.75`,
		`db0 key "fill:db0:stream:basic": stream group "g2": missing on target`,
		`db0 key "fill:db0:stream:basic": stream group "g3" pel 1700000000000-21: missing on target`,
		`db0 key "fill:db0:stream:basic": stream group "g3" consumer "dave": pending 3 != pending 2`,
		`db0 key "fill:db0:str:100k": value differs at byte 102399 (102400 vs 102400 bytes)`,
		`db0 key "fill:db0:set:hashtable": set member "member-5": missing on target`,
		`db0 key "fill:db0:zset:ttl": type zset != string`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing diff line %q", want)
		}
	}
	// TTLs are read as remaining seconds: on a loaded machine several
	// seconds may pass between the writes above and each side's digest, so
	// a TTL is matched within a minute below what was set.
	for _, want := range []string{
		`db0 key "fill:db0:str:ttl-s": ttl (7200|71\d\d)s vs none`,
		`db0 key "fill:db0:str:embstr": ttl none vs (3600|35\d\d)s`,
		`db0 key "fill:db0:hash:ttl": ttl (7000|69\d\d)s vs (100000|999\d\d)s \(expiry times differ by 9(29|30)\d\ds\)`,
	} {
		if !regexp.MustCompile(want).MatchString(all) {
			t.Errorf("missing diff line matching %q", want)
		}
	}
	if ds.Sum == dd.Sum {
		t.Error("Sum equal despite differences")
	}

	// TTL presence and value: tolerance
	if l := ds.Diff(ds, 0); len(l) != 0 {
		t.Errorf("self diff: %v", l)
	}

	// AssertSameData reports the differences and the counts
	msg := runFake(t, func(tb testing.TB) {
		AssertSameData(tb, []string{src.Addr}, []string{dst.Addr}, false, false)
	})
	if !strings.Contains(msg, "differences; first") || !strings.Contains(msg, "missing on target") ||
		!strings.Contains(msg, "source: ") || !strings.Contains(msg, "db2:") {
		t.Errorf("AssertSameData message:\n%s", msg)
	}
	t.Logf("AssertSameData message:\n%s", msg)
}

func TestDiffStreamGroupStrings(t *testing.T) {
	// stream:empty's SETID 0 on an empty stream gives 0-0 both sides; check that a
	// real last-delivered-id change is visible and readable.
	t.Parallel()
	src, dst := Start(t), Start(t)
	for _, s := range []*Server{src, dst} {
		s.Do(t, "XADD", "s", "1-1", "a", "1")
		s.Do(t, "XADD", "s", "1-2", "a", "2")
		s.Do(t, "XGROUP", "CREATE", "s", "g", "$")
	}
	dst.Do(t, "XGROUP", "SETID", "s", "g", "1-1")
	d := digest(t, false, src.Addr).Diff(digest(t, false, dst.Addr), 0)
	if len(d) != 1 || d[0] != `db0 key "s": stream group "g": last-delivered-id 1-2 != last-delivered-id 1-1` {
		t.Fatalf("diff: %q", d)
	}
}

func TestDBMap(t *testing.T) {
	t.Parallel()
	src, dst := Start(t), Start(t)
	FillAllTypes(t, src.Client(t), FillOptions{Keys: 30, DBs: []int{1, 3}, Seed: 9})
	// target: source db1 → db0, db3 → db0 (key names carry the source db, no collision)
	FillAllTypes(t, dst.Client(t), FillOptions{Keys: 30, DBs: []int{1, 3}, Seed: 9})
	ctx := context.Background()
	for _, db := range []int{1, 3} {
		c := dst.Client(t).Conn()
		c.Select(ctx, db)
		iter := c.Scan(ctx, 0, "", 1000).Iterator()
		for iter.Next(ctx) {
			if err := c.Move(ctx, iter.Val(), 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	msg := runFake(t, func(tb testing.TB) {
		AssertSameData(tb, []string{src.Addr}, []string{dst.Addr}, false, false)
	})
	if !strings.Contains(msg, "264 differences") || !strings.Contains(msg, "extra on target") {
		t.Fatalf("unmapped compare should fail, got %q", msg)
	}
	AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, CompareOptions{DBMap: map[int]int{1: 0, 3: 0}})
	// only db1 compared: the target has db3's keys too → extra
	diffs, _, _, err := Compare(ctx, []string{src.Addr}, []string{dst.Addr}, CompareOptions{DBMap: map[int]int{1: 0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(diffs) == 0 || !strings.Contains(diffs[0], `key "fill:db3:`) || !strings.Contains(diffs[0], "extra on target") {
		t.Fatalf("db1-only compare: %q", diffs[:min(3, len(diffs))])
	}
	sd := digest(t, false, src.Addr)
	if _, err := sd.MapDBs(map[int]int{1: 0, 3: 0}); err != nil {
		t.Fatal(err)
	}
	c := src.Client(t).Conn()
	c.Select(ctx, 3)
	c.Set(ctx, "fill:db1:str:raw", "collides", 0)
	c.Close()
	if _, err := digest(t, false, src.Addr).MapDBs(map[int]int{1: 0, 3: 0}); err == nil {
		t.Fatal("collision not reported")
	}
}

func TestBigKeyDigest(t *testing.T) {
	t.Parallel()
	src, dst := Start(t), Start(t)
	script := `for i = 1, tonumber(ARGV[1]) do redis.call('HSET', KEYS[1], 'field:' .. i, i) end return 1`
	for _, s := range []*Server{src, dst} {
		s.Do(t, "EVAL", script, 1, "huge", DetailLimit+1000)
	}
	dst.Do(t, "HSET", "huge", "field:77", "changed")
	t0 := time.Now()
	ds := digest(t, false, src.Addr)
	t.Logf("digest of a %d-field hash in %v", DetailLimit+1000, time.Since(t0))
	dd := digest(t, false, dst.Addr)
	k := ds.Keys["0/huge"]
	if k.Len != DetailLimit+1000 || k.Fields != nil {
		t.Fatalf("huge: len %d, fields kept: %v", k.Len, k.Fields != nil)
	}
	d := ds.Diff(dd, 0)
	if len(d) != 1 || !strings.Contains(d[0], "hash value differs (201000 vs 201000 elements") {
		t.Fatalf("diff: %q", d)
	}
}

func TestCluster(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("run", func(t *testing.T) {
		t0 := time.Now()
		c := StartCluster(t, 3, 1)
		t.Logf("cluster 3+3 up in %v", time.Since(t0))
		for _, s := range c.Nodes() {
			pids = append(pids, s.PID)
		}
		if len(c.Masters) != 3 || len(c.Replicas) != 3 || len(c.Addrs()) != 6 {
			t.Fatalf("masters %d replicas %d", len(c.Masters), len(c.Replicas))
		}
		nodes, err := clusterNodes(c.Masters[0].Addr)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes {
			if n.ownsSlot(0) && n.port != c.Masters[0].Port {
				t.Fatalf("slot 0 is on :%d, Masters[0] is %s", n.port, c.Masters[0].Addr)
			}
		}
		for i, r := range c.Replicas {
			info := r.Info(t, "replication")
			if info["role"] != "slave" || info["master_port"] != itoa(c.Masters[i].Port) {
				t.Fatalf("replica %d: %v, want master %d", i, info, c.Masters[i].Port)
			}
		}
		if m := c.MasterFor(t, "foo"); Slot("foo") != 12182 || !c.Masters[2].Running() || m != c.Masters[2] {
			t.Fatalf("MasterFor(foo) = %s (slot %d)", m.Addr, Slot("foo"))
		}
		if Slot("{user1}.a") != Slot("user1") {
			t.Fatal("hash tags")
		}

		// the same data in a standalone server and in the cluster digests equal
		cc := c.Client(t)
		single := Start(t)
		opt := FillOptions{Keys: 300, Seed: 11, TTLPct: 10, Big: true}
		t0 = time.Now()
		stc := FillAllTypes(t, cc, opt)
		t.Logf("cluster fill in %v", time.Since(t0))
		sts := FillAllTypes(t, single.Client(t), opt)
		if stc.Keys != sts.Keys || !stc.PlainList {
			t.Fatalf("stats %+v vs %+v", stc, sts)
		}
		LoadFunctionLibrary(t, cc)
		LoadFunctionLibrary(t, single.Client(t))
		dc := digest(t, true, c.Addrs()[4]) // any node seeds the topology
		dsg := digest(t, false, single.Addr)
		if dc.Sum != dsg.Sum {
			t.Fatalf("cluster and standalone Sums differ:\n%s", strings.Join(dsg.Diff(dc, time.Minute), "\n"))
		}
		cmp := CompareOptions{DstCluster: true, TTLTolerance: time.Minute}
		AssertSameDataOpts(t, []string{single.Addr}, c.Addrs(), cmp)
		var onNodes int
		for _, m := range c.Masters {
			onNodes += int(m.Do(t, "DBSIZE").(int64))
		}
		if onNodes != dc.Total() || dc.Total() != stc.Keys {
			t.Fatalf("keys: %d on masters, %d digested, %d filled", onNodes, dc.Total(), stc.Keys)
		}

		// failover: kill a master, its replica takes over
		t0 = time.Now()
		old := c.Masters[1]
		rep := c.Replicas[1]
		old.Kill(t)
		c.WaitHealthy(t, 20*time.Second)
		c.Refresh(t)
		if !slices.Contains(c.Masters, rep) || slices.Contains(c.Masters, old) {
			t.Fatalf("after failover masters = %v", c.Addrs())
		}
		t.Logf("failover in %v", time.Since(t0))
		cmp.Wait = 5 * time.Second
		AssertSameDataOpts(t, []string{single.Addr}, c.Addrs(), cmp)
		old.Restart(t)
		pids = append(pids, old.PID)
		c.WaitHealthy(t, 20*time.Second)
		c.Refresh(t)
		if len(c.Masters) != 3 || len(c.Replicas) != 3 {
			t.Fatalf("after rejoin: %d masters %d replicas", len(c.Masters), len(c.Replicas))
		}
	})
	assertGone(t, pids...)
}

func TestWaitForAndPorts(t *testing.T) {
	t.Parallel()
	n := 0
	WaitFor(t, time.Second, func() bool { n++; return n == 3 }, "n to reach %d", 3)
	msg := runFake(t, func(tb testing.TB) {
		WaitFor(tb, 50*time.Millisecond, func() bool { return false }, "never")
	})
	if !strings.Contains(msg, "timed out after 50ms waiting for never") {
		t.Fatalf("WaitFor message %q", msg)
	}
	a, b := FreePort(t), FreePort(t)
	if a == b || a < portLo || b >= portHi {
		t.Fatalf("ports %d %d", a, b)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "redistest")); err != nil {
		t.Fatalf("module root %s: %v", root, err)
	}
}

func TestStartBadArgument(t *testing.T) {
	t.Parallel()
	msg := runFake(t, func(tb testing.TB) { Start(tb, "--no-such-directive", "1") })
	if !strings.Contains(msg, "no-such-directive") || !strings.Contains(msg, "Bad directive") {
		t.Fatalf("message: %s", msg)
	}
	msg = runFake(t, func(tb testing.TB) { Start(tb, "--port", "1234") })
	if !strings.Contains(msg, "--port is managed by redistest") {
		t.Fatalf("message: %s", msg)
	}
}
