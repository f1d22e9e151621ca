package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// managedSource starts a server that forbids PSYNC, SYNC and CONFIG, like a
// managed service; notify says what its configuration sets for
// notify-keyspace-events.
func managedSource(t *testing.T, notify string) *redistest.Server {
	return redistest.Start(t,
		"--rename-command", "PSYNC", "",
		"--rename-command", "SYNC", "",
		"--rename-command", "CONFIG", "",
		"--notify-keyspace-events", notify)
}

// writeLoad runs INCR/RPUSH/APPEND/HSET/DEL/EXPIRE/RENAME and a rare FLUSHDB (db
// 4) on the source until ctx is done. Errors after ctx is done are
// ignored (a pause may hold the last pipeline).
func writeLoad(ctx context.Context, t *testing.T, addr string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg := context.Background()
		c := redis.NewClient(&redis.Options{Addr: addr})
		defer c.Close()
		c4 := redis.NewClient(&redis.Options{Addr: addr, DB: 4})
		defer c4.Close()
		for i := 0; ctx.Err() == nil; i++ {
			k := strconv.Itoa(i % 40)
			p := c.Pipeline()
			p.Incr(bg, "ctr:"+k)
			p.RPush(bg, "lst:"+k, i)
			p.Append(bg, "app:"+k, "x")
			p.HSet(bg, "h:"+k, "f"+strconv.Itoa(i%5), i)
			p.Set(bg, "tmp:"+k, i, 0)
			if i%5 == 0 {
				p.Del(bg, "lst:"+k)
				p.Expire(bg, "h:"+k, time.Hour)
			}
			if i%7 == 0 {
				p.Rename(bg, "tmp:"+k, "ren:"+k)
			}
			p4 := c4.Pipeline()
			p4.Set(bg, "db4:"+k, i, 0)
			if i%500 == 250 {
				p4.FlushDB(bg)
			}
			_, err := p.Exec(bg)
			if err == nil {
				_, err = p4.Exec(bg)
			}
			if err != nil {
				if ctx.Err() == nil {
					t.Errorf("load: %v", err)
				}
				return
			}
		}
	}()
	return done
}

// TestMigrateScanSourceCutover: a source that refuses PSYNC and CONFIG is
// migrated in the default reader mode (auto falls back to scanning) while a
// load runs; after the cutover the target equals the paused source.
func TestMigrateScanSourceCutover(t *testing.T) {
	redistest.Require(t)
	src := managedSource(t, "KEA")
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 300, DBs: []int{0, 1, 3}, Big: true, TTLPct: 20, Seed: 61})
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	defer func() { cancel(); src.Do(t, "CLIENT", "UNPAUSE"); <-done }()
	cfg := jobFile(t, "cutover_pause_max = \"30s\"\n")
	code, out, errs := ferryRunWithin(t, 90*time.Second, "migrate", "-c", cfg, "--source", src.URL(), "--target", dst.URL(), "--cutover", "--verify")
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"cutover ready", "verified:", "migrated"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errs, "reading it with SCAN") {
		t.Errorf("no log line about the fallback to scanning:\n%s", errs)
	}
	// The source is still paused: its data is frozen.
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
}

// TestScanSourceWithoutNotifications: a source without keyspace
// notifications that forbids CONFIG is refused with the setting to apply.
func TestScanSourceWithoutNotifications(t *testing.T) {
	redistest.Require(t)
	src := managedSource(t, "")
	dst := redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	code, out, errs := ferryRunWithin(t, 60*time.Second, "migrate", "-c", jobFile(t, ""), "--source", src.URL(), "--target", dst.URL())
	checkFailure(t, code, out, errs, exitFailure, `notify-keyspace-events "KEA"`)
}

// TestScanSetsNotifications: where CONFIG is allowed, the scan reader turns
// the notifications it needs on, and puts the old setting back on exit.
func TestScanSetsNotifications(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	p := startFerry(t, "sync", "-c", jobFile(t, ""), "--reader", "scan", "--source", src.URL(), "--target", dst.URL())
	notify := func() string {
		v := src.Do(t, "CONFIG", "GET", "notify-keyspace-events")
		return v.([]any)[1].(string)
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "k").(int64) == 1 }, "the key on the target")
	if n := notify(); !strings.Contains(n, "E") || !strings.Contains(n, "A") && !strings.Contains(n, "g$lshzxe") {
		t.Errorf("notify-keyspace-events during the sync = %q", n)
	}
	src.Do(t, "SET", "k2", "v2")
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "k2").(int64) == 1 }, "a live change on the target")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, 30*time.Second)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if n := notify(); n != "" {
		t.Errorf("notify-keyspace-events after the sync = %q, want it restored to \"\"", n)
	}
}

// TestScanRestartAfterKill: ferry is killed during a scan sync; keys
// deleted on the source meanwhile do not survive the restart.
func TestScanRestartAfterKill(t *testing.T) {
	redistest.Require(t)
	src := managedSource(t, "KEA")
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 300, DBs: []int{0, 2}, TTLPct: 20, Seed: 62})
	src.Do(t, "SET", "doomed", "1")
	cfg := jobFile(t, "")
	args := []string{"sync", "-c", cfg, "--reader", "scan", "--source", src.URL(), "--target", dst.URL()}
	p := startFerry(t, args...)
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "doomed").(int64) == 1 }, "the first pass on the target")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
	src.Do(t, "DEL", "doomed")
	src.Do(t, "SET", "born", "1")
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	// Restarted at once after a crash: its lease has not run out yet.
	p = startFerry(t, append(args, "--takeover")...)
	time.Sleep(time.Second)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: 30 * time.Second})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := p.wait(t, 30*time.Second); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestScanClusterRestartAfterKill: ferry SIGKILLed during a scan sync of a
// 3-master cluster source (PSYNC forbidden) and restarted: the target
// ends equal to the source under a load, and keys deleted on the source
// while ferry was dead do not survive on the target.
func TestScanClusterRestartAfterKill(t *testing.T) {
	t.Parallel()
	src := redistest.StartCluster(t, 3, 0, "--rename-command", "PSYNC", "", "--rename-command", "SYNC", "", "--notify-keyspace-events", "KEA")
	dst := redistest.Start(t)
	cc := src.Client(t)
	redistest.FillAllTypes(t, cc, redistest.FillOptions{Keys: 300, TTLPct: 20, Seed: 63})
	for i := range 30 {
		cc.Set(context.Background(), fmt.Sprintf("doomed:%d", i), "1", 0)
	}
	args := []string{"sync", "-c", jobFile(t, ""), "--source", "redis://" + src.Masters[0].Addr, "--target", dst.URL()}
	p := startFerry(t, args...)
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "doomed:29").(int64) == 1 }, "the first pass on the target")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p.wait(t, 10*time.Second)
	for i := range 30 {
		cc.Del(context.Background(), fmt.Sprintf("doomed:%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		bg := context.Background()
		for i := 0; ctx.Err() == nil; i++ {
			k := fmt.Sprint(i % 200)
			pl := cc.Pipeline()
			pl.Incr(bg, "ctr:"+k)
			pl.RPush(bg, "lst:"+k, i)
			if i%5 == 0 {
				pl.Del(bg, "lst:"+k)
			}
			pl.Exec(bg)
		}
	}()
	// Restarted at once after a crash: its lease has not run out yet.
	p = startFerry(t, append(args, "--takeover")...)
	time.Sleep(time.Second)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, src.Addrs(), []string{dst.Addr}, redistest.CompareOptions{SrcCluster: true, Wait: time.Minute})
	if n := dst.Do(t, "EXISTS", "doomed:0", "doomed:15", "doomed:29"); n != int64(0) {
		t.Errorf("keys deleted on the source while ferry was dead survive on the target (%v of 3)", n)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := p.wait(t, time.Minute); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestScanBigValues: values bigger than a control reply (an 8 MiB string,
// a 6 MB hash, both incompressible) are read by the scan reader (DUMP) and copied exactly.
func TestScanBigValues(t *testing.T) {
	t.Parallel()
	src := managedSource(t, "KEA")
	dst := redistest.Start(t)
	c := src.Client(t)
	ctx := context.Background()
	// Incompressible, or DUMP's LZF makes them small.
	noise := make([]byte, 8<<20)
	cc := rand.NewChaCha8([32]byte{1})
	cc.Read(noise)
	c.Set(ctx, "big:string", noise, 0)
	p := c.Pipeline()
	for i := range 6000 {
		p.HSet(ctx, "big:hash", fmt.Sprintf("field-%06d", i), noise[i*1000:(i+1)*1000])
	}
	if _, err := p.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ferryRunWithin(t, 2*time.Minute, "migrate", "--reader", "scan", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
}
