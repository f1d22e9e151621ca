package job

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// runRuns is a load of what fold joins: each pipeline pushes or adds to one
// key several times in a row, and sets or deletes many keys in a row (every
// kind fold knows), with an INCR between runs. lists counts the pushes the
// source acknowledged, counters the INCRs.
func runRuns(ctx context.Context, t *testing.T, c redis.UniversalClient) *load {
	l := newLoad(ctx, t)
	go func() {
		defer close(l.done)
		stop := ctx
		ctx := context.Background()
		for i := 1; stop.Err() == nil; i++ {
			k := strconv.Itoa(i % 7)
			run := 3 + i%9
			p := c.Pipeline()
			for j := range run {
				v := strconv.Itoa(i*100 + j)
				p.LPush(ctx, "q:"+k, v)
			}
			p.Incr(ctx, "ctr:"+k)
			for j := range run {
				v := strconv.Itoa(i*100 + j)
				p.RPush(ctx, "q:"+k, v, "x")
				p.SAdd(ctx, "s:"+k, v)
			}
			for range run {
				p.LPushX(ctx, "q:"+k, "lx")
			}
			for j := range run {
				p.RPushX(ctx, "q:"+k, "rx", strconv.Itoa(j))
			}
			for j := range run {
				p.HSet(ctx, "h:"+k, "f"+strconv.Itoa((i+j)%40), i)
			}
			for j := range run {
				p.HMSet(ctx, "h:"+k, "m"+strconv.Itoa((i+j)%10), j)
			}
			for j := range run {
				p.SRem(ctx, "s:"+k, strconv.Itoa((i-3)*100+j))
				p.HDel(ctx, "h:"+k, "f"+strconv.Itoa((i+j+20)%40))
			}
			for j := range run {
				p.ZAdd(ctx, "z:"+k, redis.Z{Score: float64(j), Member: strconv.Itoa((i + j) % 30)})
			}
			for j := range run {
				p.ZRem(ctx, "z:"+k, strconv.Itoa((i+j+15)%30))
				p.PFAdd(ctx, "hll:"+k, strconv.Itoa(i*100+j))
			}
			// Plain SETs of many keys (one MSET folded), broken by a SET
			// with an option; MSETs; DELs and UNLINKs of many keys. The
			// keys of one k share a hash tag: one slot on a cluster.
			str := func(j int) string { return "str:{" + k + "}:" + strconv.Itoa(j) }
			for j := range run {
				p.Set(ctx, str(j), i*100+j, 0)
				if j == run/2 {
					p.Set(ctx, "ttl:{"+k+"}", i, time.Hour)
				}
			}
			p.MSet(ctx, str(run), i, str(run+1), i, str(run+2), i)
			for j := range run / 2 {
				p.Del(ctx, str(j*2))
			}
			for j := range run / 2 {
				p.Unlink(ctx, str(j*2+1), str(run+j))
			}
			if _, err := p.Exec(ctx); err != nil {
				if stop.Err() == nil {
					t.Errorf("load: %v", err)
				}
				return
			}
			l.mu.Lock()
			l.counters["ctr:"+k]++
			l.lists["q:"+k] += int64(6 * run)
			l.mu.Unlock()
		}
	}()
	return l
}

// commandCalls is the servers' count of calls of command name, summed
// (a cluster's masters).
func commandCalls(t *testing.T, name string, servers ...*redistest.Server) int64 {
	t.Helper()
	var sum int64
	for _, s := range servers {
		v := s.Info(t, "commandstats")["cmdstat_"+name]
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				c, _ := strconv.ParseInt(n, 10, 64)
				sum += c
			}
		}
	}
	return sum
}

// TestFoldedRunsUnderKills: runs of pushes and adds to one key while
// ferry's target connections are killed again and again. The target ends
// with the source's data, every list as long as the source's pushes made it
// and every counter at the source's count (nothing lost, nothing doubled);
// it ran far fewer LPUSHs, ZADDs, DELs and UNLINKs than the source did
// and more MSETs (the runs went folded), and with fold = false never fewer.
func TestFoldedRunsUnderKills(t *testing.T) {
	redistest.Require(t)
	for _, fold := range []bool{true, false} {
		t.Run("fold="+strconv.FormatBool(fold), func(t *testing.T) {
			src := redistest.Start(t)
			dst := redistest.Start(t)
			sc := src.Client(t)
			c := testConf(t, src.URL(), dst.URL())
			c.Fold = fold
			stop := runSync(t, Options{Conf: c, Log: testLog(t)})
			waitCaughtUp(t, src, dst, "default", 30*time.Second)

			ctx, cancel := context.WithCancel(context.Background())
			l := runRuns(ctx, t, sc)
			killed := killRepeatedly(t, []*redistest.Server{dst}, "ferry-writer", 8, 250*time.Millisecond)
			cancel()
			if killed < 8 {
				t.Fatalf("only %d writer connections killed", killed)
			}
			waitCaughtUp(t, src, dst, "default", 60*time.Second)
			redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
			checkCounters(t, dst.Client(t), l)

			// Unfolded, a flight sent again after a kill may repeat some
			// that a transaction then discarded; never fewer.
			for _, name := range []string{"lpush", "zadd", "del", "unlink"} {
				if s, d := commandCalls(t, name, src), commandCalls(t, name, dst); fold && d*2 > s || !fold && d < s {
					t.Errorf("fold = %v: target ran %d %s for the source's %d", fold, d, strings.ToUpper(name), s)
				}
			}
			// The source runs an MSET of its own after each run of SETs;
			// folded, the target runs two: the SETs before the one with
			// an option, and those after it with the source's MSET.
			if s, d := commandCalls(t, "mset", src), commandCalls(t, "mset", dst); fold && d <= s || !fold && d < s {
				t.Errorf("fold = %v: target ran %d MSETs for the source's %d", fold, d, s)
			}
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestFoldedRunsIntoClusterUnderKills: the same into a cluster target,
// whose writers fold per master and send each slot's commands apart.
func TestFoldedRunsIntoClusterUnderKills(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	stop := runSync(t, clusterConf(t, src, dst))
	waitClusterSynced(t, src, dst)
	ctx, cancel := context.WithCancel(context.Background())
	l := runRuns(ctx, t, src.Client(t))
	killed := killRepeatedly(t, dst.Masters, "ferry-writer", 8, 250*time.Millisecond)
	cancel()
	if killed < 8 {
		t.Fatalf("only %d writer connections killed", killed)
	}
	waitClusterSynced(t, src, dst)
	checkClusterCounters(t, dst, l)
	if s, d := commandCalls(t, "lpush", src), commandCalls(t, "lpush", dst.Masters...); d*2 > s {
		t.Errorf("target ran %d LPUSHs for the source's %d: the runs were not folded", d, s)
	}
	s, d := commandCalls(t, "mset", src), commandCalls(t, "mset", dst.Masters...)
	t.Logf("MSET: target %d, source %d", d, s)
	if d <= s {
		t.Errorf("target ran %d MSETs for the source's %d: runs of SETs in one slot were not folded", d, s)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}
