package e2e

import (
	"context"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestSoak is a seeded random run of faults under a write load: ferry's
// target connections killed, its source link killed, the target restarted,
// the target paused, ferry itself SIGKILLed and started again. At the end
// the target must equal the source — every counter, list, string and stream
// — so that nothing was lost and nothing applied twice.
//
// SOAK_DURATION sets how long faults are injected (60s by default; `make
// soak` runs longer); SOAK_SEED replays a run (each run logs its seed).
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak: not with -short")
	}
	redistest.Require(t)
	dur := 60 * time.Second
	if v := os.Getenv("SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SOAK_DURATION: %v", err)
		}
		dur = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SOAK_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SOAK_SEED: %v", err)
		}
		seed = s
	}
	t.Logf("seed %d (replay: SOAK_SEED=%d make soak)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d: replay with SOAK_SEED=%d SOAK_DURATION=%s make soak", seed, seed, dur)
		}
	}()
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))

	src := redistest.Start(t, "--repl-backlog-size", "256mb")
	// The target keeps what it acknowledged across a restart, as a
	// production target with AOF does.
	dst := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 300, DBs: []int{0, 1, 2}, Seed: int64(seed % 1000)})
	args := []string{"sync", "--source", src.URL(), "--target", dst.URL(), "--job", "e2e", "--log-format", "json",
		"-c", writeConf(t, t.TempDir())}
	f := startFerry(t, args...)
	redistest.WaitFor(t, 60*time.Second, func() bool { return markerOffset(t, dst) >= 0 }, "the snapshot")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	load := runSoakLoad(ctx, t, src, []int{0, 1, 2})

	faults := map[string]int{}
	for end := time.Now().Add(dur); time.Now().Before(end); {
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
		switch n := rng.IntN(5); n {
		case 0:
			faults["target connections killed"]++
			dst.KillClients(t, "ferry-")
		case 1:
			faults["source link killed"]++
			src.KillClients(t, "ferry-")
		case 2:
			faults["target restarted"]++
			dst.Restart(t)
		case 3:
			faults["ferry SIGKILLed and restarted"]++
			f.cmd.Process.Signal(syscall.SIGKILL)
			<-f.done
			f = startFerry(t, args...)
		case 4:
			faults["target paused"]++
			dst.Do(t, "CLIENT", "PAUSE", "500", "WRITE")
		}
		select {
		case <-f.done:
			t.Fatalf("ferry exited during the soak (seed %d)", seed)
		default:
		}
	}
	cancel()
	load.wait()
	t.Logf("faults: %v; load: %d rounds", faults, load.rounds)

	want := infoInt(t, src, "replication", "master_repl_offset")
	redistest.WaitFor(t, 120*time.Second, func() bool { return markerOffset(t, dst) >= want }, "ferry to catch up after the faults")
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	load.check(t, dst)

	f.stop(t)
}

// soakLoad writes INCR, RPUSH, APPEND, XADD and HINCRBY to several dbs and
// counts what the source acknowledged.
type soakLoad struct {
	wg     sync.WaitGroup
	mu     sync.Mutex
	incr   map[counter]int64 // INCRs and HINCRBYs acknowledged
	rounds int
}

// counter is a string counter (field "") or a hash field in one db.
type counter struct {
	db         int
	key, field string
}

func runSoakLoad(ctx context.Context, t *testing.T, src *redistest.Server, dbs []int) *soakLoad {
	l := &soakLoad{incr: map[counter]int64{}}
	for _, db := range dbs {
		c := redis.NewClient(&redis.Options{Addr: src.Addr, DB: db})
		t.Cleanup(func() { c.Close() })
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			stop := ctx
			ctx := context.Background() // a pipeline cut off by its context could be applied uncounted
			for i := 0; stop.Err() == nil; i++ {
				k := strconv.Itoa(i % 50)
				p := c.Pipeline()
				p.Incr(ctx, "soak:ctr:"+k)
				p.RPush(ctx, "soak:lst:"+k, i)
				p.Append(ctx, "soak:app:"+k, "y")
				p.XAdd(ctx, &redis.XAddArgs{Stream: "soak:xs:" + k, Values: []string{"i", strconv.Itoa(i)}})
				p.HIncrBy(ctx, "soak:h", "f"+k, 1)
				if _, err := p.Exec(ctx); err != nil {
					return
				}
				l.mu.Lock()
				l.incr[counter{db, "soak:ctr:" + k, ""}]++
				l.incr[counter{db, "soak:h", "f" + k}]++
				l.rounds++
				l.mu.Unlock()
			}
		}()
	}
	return l
}

func (l *soakLoad) wait() { l.wg.Wait() }

// check compares the target's counters with what the source acknowledged:
// a lost write shows as less, a doubled one as more.
func (l *soakLoad) check(t *testing.T, dst *redistest.Server) {
	t.Helper()
	ctx := context.Background()
	clients := map[int]*redis.Client{}
	for ctr, want := range l.incr {
		c := clients[ctr.db]
		if c == nil {
			c = redis.NewClient(&redis.Options{Addr: dst.Addr, DB: ctr.db})
			defer c.Close()
			clients[ctr.db] = c
		}
		var got int64
		if ctr.field != "" {
			got, _ = c.HGet(ctx, ctr.key, ctr.field).Int64()
		} else {
			got, _ = c.Get(ctx, ctr.key).Int64()
		}
		if got != want {
			t.Errorf("db %d %s %s = %d on the target, %d acknowledged by the source", ctr.db, ctr.key, ctr.field, got, want)
		}
	}
}
