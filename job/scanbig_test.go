package job

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestScanBigValues: a scan sync whose source holds, besides ordinary keys,
// big values of every type (a hash, sets, a zset, a list, a string, a
// stream with groups, consumers and pending entries; TTLs on some) read in
// pieces instead of with one DUMP. Big keys change while the pass reads
// them and again in the live phase; the target converges to the source. At
// scan_big_value = 1 every value, of every encoding in FillAllTypes, is
// read in pieces.
func TestScanBigValues(t *testing.T) {
	redistest.Require(t)
	for _, big := range []int64{64 * conf.KiB, 1} {
		t.Run("scan_big_value="+conf.FormatSize(big), func(t *testing.T) {
			testScanBigValues(t, big)
		})
	}
}

func testScanBigValues(t *testing.T, bigValue int64) {
	src, dst, sc := managedPair(t)
	ctx := context.Background()
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, DBs: []int{0, 2}, Big: true, TTLPct: 20, Seed: 21})
	noise := func(n int) string {
		b := make([]byte, n)
		crand.Read(b)
		return string(b)
	}
	// More big values: TTLs, a string of several pieces, a hash in
	// another db, a stream with two groups and consumers without pending
	// entries, scores of every form.
	p := sc.Pipeline()
	p.Set(ctx, "big:str", noise(3<<20+12345), time.Hour)
	for _, k := range []string{"fill:db0:big:hash", "fill:db0:big:list", "fill:db0:big:zset"} {
		p.Expire(ctx, k, 2*time.Hour)
	}
	p.ZAdd(ctx, "fill:db0:big:zset", redis.Z{Score: -1e300, Member: "tiny"}, redis.Z{Score: 0.1, Member: "tenth"})
	p.Do(ctx, "ZADD", "fill:db0:big:zset", "+inf", "top", "-inf", "bottom")
	p.XGroupCreate(ctx, "fill:db0:big:stream", "late", "$")
	p.XGroupCreateConsumer(ctx, "fill:db0:big:stream", "big", "idle")
	p.XReadGroup(ctx, &redis.XReadGroupArgs{Group: "big", Consumer: "second", Streams: []string{"fill:db0:big:stream", ">"}, Count: 700})
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	sc.XAck(ctx, "fill:db0:big:stream", "big", "1700000002000-1", "1700000002000-2", "1700000002000-1600")
	c2 := redis.NewClient(&redis.Options{Addr: src.Addr, DB: 2})
	defer c2.Close()
	fields := make([]any, 0, 8000)
	for i := 0; i < 4000; i++ {
		fields = append(fields, "f"+strconv.Itoa(i), noise(40))
	}
	if err := c2.HSet(ctx, "db2:big:hash", fields...).Err(); err != nil {
		t.Fatal(err)
	}
	c2.Expire(ctx, "db2:big:hash", time.Hour)

	// Big keys change while the pass reads them.
	lctx, lcancel := context.WithCancel(ctx)
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		for i := 0; lctx.Err() == nil; i++ {
			p := sc.Pipeline()
			p.HSet(ctx, "fill:db0:big:hash", "live:"+strconv.Itoa(i%500), i)
			p.HDel(ctx, "fill:db0:big:hash", "field:"+strconv.Itoa(i%5000))
			p.LPush(ctx, "fill:db0:big:list", i)
			p.SAdd(ctx, "fill:db0:big:set", "live:"+strconv.Itoa(i))
			p.SRem(ctx, "fill:db0:big:set", "member:"+strconv.Itoa(i%5000))
			p.ZIncrBy(ctx, "fill:db0:big:zset", 1, "member:"+strconv.Itoa(i%5000))
			p.XAdd(ctx, &redis.XAddArgs{Stream: "fill:db0:big:stream", Values: []any{"live", i}})
			p.SetRange(ctx, "big:str", int64(i*997%(3<<20)), "LIVE")
			if _, err := p.Exec(ctx); err != nil {
				t.Errorf("load: %v", err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	c := testConf(t, src.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ScanBigValue = bigValue
	state, stop := runScanPass(t, c)
	r := state().Shards[0].Reader
	if r.BigValues < 8 {
		t.Errorf("reader %+v: want the big values read in pieces", r)
	}
	time.Sleep(300 * time.Millisecond)
	lcancel()
	<-loaded
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})

	// The live phase: the same keys change again, in every way.
	before := state().Shards[0].Reader.BigValues
	p = sc.Pipeline()
	p.HSet(ctx, "fill:db0:big:hash", "after", "1")
	p.Persist(ctx, "fill:db0:big:hash")
	p.Expire(ctx, "fill:db0:big:set", time.Hour)
	p.LSet(ctx, "fill:db0:big:list", 10, "changed")
	p.RPop(ctx, "fill:db0:big:list")
	p.ZRem(ctx, "fill:db0:big:zset", "top")
	p.Append(ctx, "big:str", noise(1000))
	p.XAck(ctx, "fill:db0:big:stream", "big", "1700000002000-3")
	p.XDel(ctx, "fill:db0:big:stream", "1700000002000-19000") // not pending: see readBig on deleted pending entries
	p.XGroupDelConsumer(ctx, "fill:db0:big:stream", "big", "idle")
	p.Del(ctx, "fill:db0:big:intset")
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	c2.HSet(ctx, "db2:big:hash", "f1", "changed")
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	r = state().Shards[0].Reader
	if r.BigValues <= before {
		t.Errorf("reader %+v: want the changed big values read again in pieces (%d before)", r, before)
	}
	if sh := state().Status("j", "sync").Shards[0]; sh.BigValues != r.BigValues {
		t.Errorf("status shard %+v: want big_values %d", sh, r.BigValues)
	}
	// One piece asks for about 1 MiB (the reply, plus the commands built
	// from it).
	if r.PeakPiece > 4<<20 {
		t.Errorf("a piece held %d bytes, want at most 4 MiB", r.PeakPiece)
	}
	t.Logf("big values read in pieces: %d; the most one piece held: %d bytes", r.BigValues, r.PeakPiece)
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}

// TestScanBigKeysSurviveRestart: a scan sync with big values read in
// pieces is stopped and started again; the new pass is followed by a sweep
// (the restart of a scan source is a full resync) that must keep the big
// keys, which the snapshot names but does not hold: a client polling the
// target all along never finds one missing, while a key deleted on the
// source during the stop is swept.
func TestScanBigKeysSurviveRestart(t *testing.T) {
	src, dst, sc := managedPair(t)
	ctx := context.Background()
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, DBs: []int{0, 2}, Big: true, TTLPct: 10, Seed: 31})
	const gone = "fill:db0:str:ttl-s"
	c := testConf(t, src.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ScanBigValue = 16 * conf.KiB
	run := func() (func() State, func() (Summary, error)) { return runScanPass(t, c) }
	state, stop := run()
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	// Every key of the source (the big ones: at least 16 KiB).
	type dbKey struct {
		db  int
		key string
	}
	var keys []dbKey
	big := 0
	clients := map[int]*redis.Client{}
	for _, db := range []int{0, 2} {
		sdb := redis.NewClient(&redis.Options{Addr: src.Addr, DB: db})
		defer sdb.Close()
		clients[db] = redis.NewClient(&redis.Options{Addr: dst.Addr, DB: db})
		defer clients[db].Close()
		ks, err := sdb.Keys(ctx, "*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range ks {
			keys = append(keys, dbKey{db, k})
			if sdb.MemoryUsage(ctx, k).Val() >= 16<<10 {
				big++
			}
		}
	}
	if n := state().Shards[0].Reader.BigValues; big < 10 || n < int64(big) {
		t.Fatalf("%d values read in pieces, want at least the %d big keys (10 at least)", n, big)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}

	// While ferry is stopped: a key goes (the sweep must delete it), the
	// big keys change (the stream rewrites them).
	if sc.Exists(ctx, gone).Val() != 1 {
		t.Fatalf("no key %s on the source", gone)
	}
	sc.Del(ctx, gone)
	sc.HSet(ctx, "fill:db0:big:hash", "restart", "1")
	sc.RPush(ctx, "fill:db0:big:list", "restart")

	pctx, pcancel := context.WithCancel(ctx)
	polled := make(chan struct{})
	var polls int
	var missing []string
	go func() {
		defer close(polled)
		for pctx.Err() == nil {
			for _, db := range []int{0, 2} {
				p := clients[db].Pipeline()
				cmds := make([]*redis.IntCmd, len(keys))
				for i, k := range keys {
					if k.db == db && k.key != gone {
						cmds[i] = p.Exists(ctx, k.key)
					}
				}
				if _, err := p.Exec(ctx); err != nil {
					t.Errorf("poll: %v", err)
					return
				}
				for i, cmd := range cmds {
					if cmd != nil && cmd.Val() != 1 && len(missing) < 10 {
						missing = append(missing, fmt.Sprintf("db %d %s (poll %d)", db, keys[i].key, polls))
					}
				}
			}
			polls++
			time.Sleep(2 * time.Millisecond)
		}
	}()
	state, stop = run()
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 60 * time.Second})
	pcancel()
	<-polled
	if len(missing) > 0 {
		t.Errorf("the target lacked keys during the restart: %s", strings.Join(missing, ", "))
	}
	if r := state().Shards[0].Reader; r.BigValues < int64(big) {
		t.Errorf("reader %+v: want the big keys read in pieces again", r)
	}
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Swept != 1 {
		t.Errorf("summary %+v: want the one key deleted on the source swept", sum)
	}
	t.Logf("%d polls of %d keys (%d big) during the restart; %d keys swept", polls, len(keys)-1, big, sum.Swept)
}

// runScanPass starts a sync of c (one source shard, read by scanning) and
// returns once its first pass is over and it streams changes; a sync that
// ends before that fails the test.
func runScanPass(t *testing.T, c conf.Job) (func() State, func() (Summary, error)) {
	t.Helper()
	return runScanPassWithin(t, c, 60*time.Second)
}

// runScanPassWithin is runScanPass with its own bound on the first pass.
func runScanPassWithin(t *testing.T, c conf.Job, wait time.Duration) (func() State, func() (Summary, error)) {
	t.Helper()
	observed := make(chan func() State, 1)
	ended := make(chan error, 1)
	stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { observed <- f }}, ended)
	state := <-observed
	redistest.WaitFor(t, wait, func() bool {
		select {
		case err := <-ended:
			t.Fatalf("the sync ended: %v", err)
		default:
		}
		st := state()
		return len(st.Shards) == 1 && st.Shards[0].Reader.Phase == "streaming"
	}, "the first pass")
	return state, stop
}

// TestScanBigHashFieldTTLsInPieces: a hash read in pieces keeps its
// per-field TTLs (HPEXPIRETIME read, HPEXPIREAT written): the target's
// fields expire when the source's do. Needs a Redis 7.4+ server in
// FERRY_REDIS_SERVER_NEW; skipped without one.
func TestScanBigHashFieldTTLsInPieces(t *testing.T) {
	src := redistest.StartNewer(t)
	dst := redistest.StartNewer(t)
	sc := src.Client(t)
	ctx := context.Background()
	fields := make([]any, 0, 4000)
	for i := 0; i < 2000; i++ {
		fields = append(fields, "f"+strconv.Itoa(i), strings.Repeat("v", 100))
	}
	if err := sc.HSet(ctx, "big", fields...).Err(); err != nil {
		t.Fatal(err)
	}
	// Fields spread over the HSCAN batches, with two expiry times.
	setTTLs := []any{"HPEXPIREAT", "big", "4102444800000", "FIELDS", "10"}
	names := []any{"FIELDS", "20"}
	for i := 0; i < 10; i++ {
		setTTLs = append(setTTLs, "f"+strconv.Itoa(i*150))
		names = append(names, "f"+strconv.Itoa(i*150))
	}
	src.Do(t, setTTLs...)
	for i := 0; i < 10; i++ {
		names = append(names, "f"+strconv.Itoa(i*150+7))
	}
	src.Do(t, append([]any{"HPEXPIRE", "big", "7200000", "FIELDS", "10"}, names[12:]...)...)
	c := testConf(t, src.URL(), dst.URL())
	c.Source.Reader = conf.ReaderScan
	c.Source.ScanBigValue = 64 * conf.KiB
	var state func() State
	rctx, rcancel := context.WithTimeout(ctx, 60*time.Second)
	defer rcancel()
	if _, err := Run(rctx, Options{Conf: c, Migrate: true, Log: testLog(t), Observe: func(f func() State) { state = f }}); err != nil {
		t.Fatal(err)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	want := fmt.Sprint(src.Do(t, append([]any{"HPEXPIRETIME", "big"}, names...)...))
	if got := fmt.Sprint(dst.Do(t, append([]any{"HPEXPIRETIME", "big"}, names...)...)); got != want {
		t.Errorf("field expiry times on the target %s, want %s", got, want)
	}
	if n := state().Shards[0].Reader.BigValues; n == 0 {
		t.Error("the hash was not read in pieces")
	}
}
