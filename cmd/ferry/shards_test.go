package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/status"
)

// clusterLoad INCRs and RPUSHes keys over every slot of a cluster until ctx
// ends; wait returns once it has.
func clusterLoad(ctx context.Context, t *testing.T, c *redistest.Cluster) (wait func()) {
	cc := c.Client(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		bg := context.Background()
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprint(i % 300)
			p := cc.Pipeline()
			p.Incr(bg, "ctr:"+k)
			p.RPush(bg, "lst:"+k, i)
			p.Append(bg, "app:"+k, "x")
			p.Exec(bg)
		}
	}()
	return wg.Wait
}

// TestShardsSplitSync: a 6-master source cluster synced into a 3-master
// target cluster by 3 processes (--shards 0/3, 1/3, 2/3) under a write load;
// one process SIGKILLed and restarted (taking its lease over); at the end
// the target equals the source, and each process's /status shows its shard
// set and only its two shards. ferry plan says the same split.
func TestShardsSplitSync(t *testing.T) {
	t.Parallel()
	src := redistest.StartCluster(t, 6, 0)
	dst := redistest.StartCluster(t, 3, 0)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 300, Seed: 81})
	source, target := "redis://"+src.Masters[0].Addr, "redis://"+dst.Masters[0].Addr

	// The plan, as the processes will compute it.
	cfg := jobFile(t, "")
	code, out, errs := ferryRunWithin(t, time.Minute, "plan", "-c", cfg, "--source", source, "--target", target, "--processes", "3")
	if code != exitOK {
		t.Fatalf("plan: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// Masters are ordered by their first slot: shard k goes to process k mod 3.
	for i := range 3 {
		want := fmt.Sprintf("process %d/3 (--shards %d/3): 2 shard(s)\n  %s  slots ", i, i, src.Masters[i].Addr)
		if !strings.Contains(out, want) || !strings.Contains(out, "\n  "+src.Masters[i+3].Addr+"  slots ") {
			t.Errorf("plan does not give %s and %s to process %d:\n%s", src.Masters[i].Addr, src.Masters[i+3].Addr, i, out)
		}
	}
	code, out, _ = ferryRunWithin(t, time.Minute, "plan", "-c", cfg, "--source", source, "--target", target, "--processes", "4")
	if code != exitOK || !strings.Contains(out, "process 0/4 (--shards 0/4): 2 shard(s)") || !strings.Contains(out, "process 3/4 (--shards 3/4): 1 shard(s)") {
		t.Errorf("plan for 4:\n%s", out)
	}

	procs := make([]*ferryProc, 3)
	bases := make([]string, 3)
	start := func(i int, extra ...string) {
		procs[i], bases[i] = leaseRun(t, source, target, "split", `target_nonempty = "overwrite"`, append([]string{"--shards", fmt.Sprintf("%d/3", i)}, extra...)...)
	}
	for i := range procs {
		start(i)
	}
	for i := range procs {
		j := streaming(t, procs[i], bases[i], "split")
		if j.ShardSet != fmt.Sprintf("%d/3", i) || len(j.Shards) != 2 || j.Shards[0].Addr != src.Masters[i].Addr || j.Shards[1].Addr != src.Masters[i+3].Addr {
			t.Errorf("process %d/3 /status: shard_set %q, shards %+v", i, j.ShardSet, j.Shards)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	wait := clusterLoad(ctx, t, src)
	defer func() { cancel(); wait() }()
	time.Sleep(time.Second)

	if err := syscall.Kill(ferryPID(procs[1]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	procs[1].wait(t, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	start(1, "--takeover")
	streaming(t, procs[1], bases[1], "split")
	time.Sleep(500 * time.Millisecond)
	cancel()
	wait()

	redistest.AssertSameDataOpts(t, src.Addrs(), dst.Addrs(), redistest.CompareOptions{SrcCluster: true, DstCluster: true, Wait: time.Minute})
	for i := range procs {
		if j, ok := statusJob(t, bases[i], "split"); !ok || j.Phase != status.PhaseStreaming {
			t.Errorf("process %d: %+v", i, j)
		}
		stopOK(t, procs[i])
	}
}

// TestShardsOneShardSource: a source that is not a cluster is one shard:
// only 0/1 reads it; plan says so too.
func TestShardsOneShardSource(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	code, out, errs := ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "--shards", "1/2", "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(lastLine(errs), "shards 1/2: the source is not a cluster") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, _, errs = ferryRunWithin(t, time.Minute, "plan", "--source", src.URL(), "--target", dst.URL(), "--processes", "2", "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(lastLine(errs), "is not a cluster") {
		t.Errorf("plan: exit %d\n%s", code, errs)
	}
	code, _, errs = ferryRunWithin(t, time.Minute, "sync", "--source", src.URL(), "--target", dst.URL(), "--shards", "2/2", "-c", jobFile(t, ""))
	if code != exitUsage || !strings.Contains(errs, `--shards "2/2"`) {
		t.Errorf("bad --shards: exit %d\n%s", code, errs)
	}
}
