package job

import (
	"bytes"
	"context"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// testConf is a job from src to dst (src "" for an RDB import).
func testConf(t testing.TB, src, dst string) conf.Job {
	t.Helper()
	c := conf.Default()
	c.DataDir = t.TempDir()
	c.ProgressInterval = 0
	var err error
	if src != "" {
		if c.Source, err = conf.ParseAddr(src); err != nil {
			t.Fatal(err)
		}
	}
	if c.Target, err = conf.ParseAddr(dst); err != nil {
		t.Fatal(err)
	}
	return c
}

func testLog(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Timestamp().Logger()
}

// saveRDB fills a fresh server with every type and encoding, saves it and
// returns the server and the path of its dump.rdb.
func saveRDB(t *testing.T, keys int, big bool) (*redistest.Server, string) {
	src := redistest.Start(t)
	c := src.Client(t)
	redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: keys, DBs: []int{0, 1, 3}, Big: big, TTLPct: 20, Seed: 7})
	redistest.LoadFunctionLibrary(t, c)
	src.Do(t, "SAVE")
	return src, filepath.Join(src.Dir, "dump.rdb")
}

func TestImportRDBBothPaths(t *testing.T) {
	redistest.Require(t)
	src, path := saveRDB(t, 300, true)
	for _, restore := range []conf.Restore{conf.RestoreAlways, conf.RestoreNever} {
		t.Run(string(restore), func(t *testing.T) {
			dst := redistest.Start(t)
			c := testConf(t, "", dst.URL())
			c.RDB = path
			c.Restore = restore
			sum, err := Run(context.Background(), Options{Conf: c, Log: testLog(t)})
			if err != nil {
				t.Fatal(err)
			}
			redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
			if sum.Keys == 0 || sum.RDBBytes == 0 {
				t.Fatalf("summary %+v", sum)
			}
			// The import leaves no marker behind.
			if n := dst.Client(t).Exists(context.Background(), "__ferry:default:pos").Val(); n != 0 {
				t.Fatalf("marker left on the target")
			}
		})
	}
}

// runSync starts a sync job in the background; stop cancels it and returns
// its result.
func runSync(t *testing.T, o Options) (stop func() (Summary, error)) {
	t.Helper()
	return runSyncEnded(t, o, nil)
}

// runSyncEnded is runSync that also sends Run's result to ended, for jobs
// expected to end by themselves.
func runSyncEnded(t *testing.T, o Options, ended chan<- error) (stop func() (Summary, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var (
		sum  Summary
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		sum, err = Run(ctx, o)
		if ended != nil {
			ended <- err
		}
	}()
	var once sync.Once
	stop = func() (Summary, error) {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(90 * time.Second):
				t.Fatal("sync did not stop within 90 s")
			}
		})
		return sum, err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// load runs a mixed write load on c until ctx is done, and returns the
// counters it incremented (the exact values the target must end with).
type load struct {
	mu       sync.Mutex
	counters map[string]int64
	lists    map[string]int64
	stop     context.Context
	done     chan struct{} // closed when the load's goroutine returned
}

// The loads each test runs, so that waitCaughtUp can let a stopped load's
// last pipeline land on the source before it reads the source's offset
// (cancel does not wait for it).
var (
	loadsMu sync.Mutex
	loads   = map[testing.TB][]*load{}
)

// settleLoads waits for t's loads whose context ended to return.
func settleLoads(t testing.TB) {
	loadsMu.Lock()
	ls := append([]*load(nil), loads[t]...)
	loadsMu.Unlock()
	for _, l := range ls {
		if l.stop.Err() != nil {
			<-l.done
		}
	}
}

// newLoad is a load that runs until ctx ends, registered for settleLoads;
// its goroutine closes done.
func newLoad(ctx context.Context, t *testing.T) *load {
	l := &load{counters: map[string]int64{}, lists: map[string]int64{}, stop: ctx, done: make(chan struct{})}
	loadsMu.Lock()
	loads[t] = append(loads[t], l)
	loadsMu.Unlock()
	t.Cleanup(func() {
		loadsMu.Lock()
		delete(loads, t)
		loadsMu.Unlock()
	})
	return l
}

func runLoad(ctx context.Context, t *testing.T, c redis.UniversalClient) *load {
	return runLoadOpts(ctx, t, c, false)
}

// runLoadOpts with tolerant set goes on through errors (a crashing source):
// its counts are then not exact, and the digest is the check.
func runLoadOpts(ctx context.Context, t *testing.T, c redis.UniversalClient, tolerant bool) *load {
	l := newLoad(ctx, t)
	go func() {
		defer close(l.done)
		// ctx only says when to stop, between pipelines: a pipeline cut off
		// by its context may be applied without its replies being counted.
		stop := ctx
		ctx := context.Background()
		i := 0
		for stop.Err() == nil {
			i++
			k := strconv.Itoa(i % 50)
			p := c.Pipeline()
			p.Incr(ctx, "ctr:"+k)
			p.LPush(ctx, "lst:"+k, i)
			p.Append(ctx, "app:"+k, "x")
			p.Set(ctx, "str:"+strconv.Itoa(i%500), i, 0)
			p.HSet(ctx, "h:"+k, "f"+strconv.Itoa(i%7), i)
			p.ZAdd(ctx, "z:"+k, redis.Z{Score: float64(i), Member: i % 13})
			p.XAdd(ctx, &redis.XAddArgs{Stream: "xs:" + k, Values: []any{"i", i}})
			if i%10 == 0 {
				p.Del(ctx, "str:"+strconv.Itoa((i/10)%500))
				p.Expire(ctx, "h:"+k, time.Hour)
			}
			if _, err := p.Exec(ctx); err != nil {
				if stop.Err() != nil && !tolerant {
					return
				}
				if tolerant {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				t.Errorf("load: %v", err)
				return
			}
			l.mu.Lock()
			l.counters["ctr:"+k]++
			l.lists["lst:"+k]++
			l.mu.Unlock()
		}
	}()
	return l
}

func TestSyncFullAndIncremental(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, DBs: []int{0, 2}, TTLPct: 10, Seed: 1})
	redistest.LoadFunctionLibrary(t, sc)

	stop := runSync(t, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)})
	ctx, cancel := context.WithCancel(context.Background())
	l := runLoad(ctx, t, sc)
	streamOnly(t, sc)
	time.Sleep(2 * time.Second)
	cancel()
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	checkCounters(t, dst.Client(t), l)
	sum, err := stop()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Commands == 0 {
		t.Fatalf("no stream commands applied: %+v", sum)
	}
}

// streamOnly issues commands whose replication is special: transactions,
// scripts, renames, flushes, several dbs.
func streamOnly(t *testing.T, c *redis.Client) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil && err != redis.Nil {
			t.Fatal(err)
		}
	}
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "tx:a", "1", 0)
		p.Incr(ctx, "tx:n")
		p.RPush(ctx, "tx:l", "a", "b")
		return nil
	})
	must(err)
	must(c.Eval(ctx, "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('INCR', KEYS[2])", []string{"lua:s", "lua:n"}, "v").Err())
	must(c.Set(ctx, "ren:a", "x", 0).Err())
	must(c.Rename(ctx, "ren:a", "ren:b").Err())
	// FLUSHDB on a spare db, then more writes in several dbs.
	c2 := redis.NewClient(&redis.Options{Addr: c.Options().Addr, DB: 5})
	defer c2.Close()
	must(c2.Set(ctx, "spare", "1", 0).Err())
	must(c2.FlushDB(ctx).Err())
	must(c2.Set(ctx, "spare:after", "2", 0).Err())
	c6 := redis.NewClient(&redis.Options{Addr: c.Options().Addr, DB: 6})
	defer c6.Close()
	must(c6.HSet(ctx, "db6:h", "a", 1).Err())
	must(c.Set(ctx, "ttl:px", "v", 90*time.Minute).Err())
}

func checkCounters(t *testing.T, dst redis.UniversalClient, l *load) {
	t.Helper()
	ctx := context.Background()
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, want := range l.counters {
		got, err := dst.Get(ctx, k).Int64()
		if err != nil || got != want {
			t.Errorf("counter %s: target %d (%v), source incremented %d times", k, got, err, want)
		}
	}
	for k, want := range l.lists {
		got := dst.LLen(ctx, k).Val()
		if got != want {
			t.Errorf("list %s: target length %d, source pushed %d", k, got, want)
		}
	}
}

func TestImportIntoNonEmptyTargetRefused(t *testing.T) {
	redistest.Require(t)
	_, path := saveRDB(t, 10, false)
	dst := redistest.Start(t)
	dst.Do(t, "SET", "theirs", "1")
	c := testConf(t, "", dst.URL())
	c.RDB = path
	_, err := Run(context.Background(), Options{Conf: c, Log: testLog(t)})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("target_nonempty")) {
		t.Fatalf("want a refusal naming target_nonempty, got %v", err)
	}
}
