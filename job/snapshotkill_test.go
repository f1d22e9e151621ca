package job

import (
	"context"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestKillsDuringSnapshot: the writers' connections are killed again and
// again while the snapshot streams in — its flights go out without the
// fence (see writer.planFlight) — and a load's INCRs queue up behind it.
// Every key arrives, and no counter counts twice.
func TestKillsDuringSnapshot(t *testing.T) {
	redistest.Require(t)
	for _, cluster := range []bool{false, true} {
		name := "standalone"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			// The source writes its snapshot at ~4,000 keys a second
			// (250 µs a key), so that the kills below land while it
			// streams in: unslowed, 8,000 keys were applied in 0.3 s once
			// in a CI run, after two kills.
			src := redistest.Start(t, "--rdb-key-save-delay", "250")
			sc := src.Client(t)
			fill := redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 8000, Big: true, Seed: 31})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			l := runLoad(ctx, t, sc)

			var masters []*redistest.Server
			var dc *redistest.Cluster
			var o Options
			if cluster {
				dc = redistest.StartCluster(t, 3, 0)
				masters, o = dc.Masters, clusterConf(t, src, dc)
			} else {
				dst := redistest.Start(t)
				masters, o = []*redistest.Server{dst}, Options{Conf: testConf(t, src.URL(), dst.URL()), Log: testLog(t)}
			}
			keys := func() int {
				n := 0
				for _, m := range masters {
					n += int(m.Do(t, "DBSIZE").(int64))
				}
				return n
			}
			stop := runSync(t, o)
			// A dozen kills: each sends the snapshot's unanswered flights
			// again from their start, so a storm that never lets up would
			// hold it back for as long as it lasts.
			during := 0
			for deadline := time.Now().Add(30 * time.Second); during < 12 && keys() < fill.Keys && time.Now().Before(deadline); {
				for _, m := range masters {
					during += m.KillClients(t, "ferry-writer")
				}
				time.Sleep(30 * time.Millisecond)
			}
			cancel()
			if during < 3 {
				t.Fatalf("only %d connections killed while the snapshot streamed in", during)
			}
			t.Logf("%d connections killed during the snapshot", during)
			if cluster {
				settleLoads(t)
				waitClusterSynced(t, src, dc)
				checkClusterCounters(t, dc, l)
			} else {
				waitCaughtUp(t, src, masters[0], "default", 60*time.Second)
				redistest.AssertSameData(t, []string{src.Addr}, []string{masters[0].Addr}, false, false)
				checkCounters(t, masters[0].Client(t), l)
			}
			if _, err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
