package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/status"
)

// leaseRun starts a sync of job name from src to dst in its own data dir
// (so the local spool lock cannot see another process), with its status
// server, and the extra settings.
func leaseRun(t *testing.T, src, dst, name, extra string, args ...string) (*ferryProc, string) {
	t.Helper()
	addr := freeStatusAddr(t)
	cfg := jobFile(t, fmt.Sprintf("status_addr = %q\n%s", addr, extra))
	p := startFerry(t, append([]string{"sync", "--source", src, "--target", dst, "--job", name, "-c", cfg}, args...)...)
	return p, "http://" + addr
}

// streaming waits until job name streams, according to its /status.
func streaming(t *testing.T, p *ferryProc, base, name string) status.Job {
	t.Helper()
	var j status.Job
	redistest.WaitFor(t, time.Minute, func() bool {
		select {
		case <-p.done:
			code, out, errs := p.wait(t, 0)
			t.Fatalf("%s ended: exit %d\nstdout:\n%s\nstderr:\n%s", name, code, out, errs)
		default:
		}
		var ok bool
		j, ok = statusJob(t, base, name)
		return ok && j.Phase == status.PhaseStreaming
	}, "job %s streaming", name)
	return j
}

// stopOK ends a sync with SIGTERM and wants exit 0.
func stopOK(t *testing.T, p *ferryProc) {
	t.Helper()
	if err := syscall.Kill(ferryPID(p), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := p.wait(t, time.Minute); code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestLeaseSecondProcessRefused: a second process of the same job into
// the same target exits 1 at start, naming the owner; a job of another name
// runs beside the first; under a load, the target ends equal to the source
// (nothing applied twice).
func TestLeaseSecondProcessRefused(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	p1, base1 := leaseRun(t, src.URL(), dst.URL(), "orders", "")
	j := streaming(t, p1, base1, "orders")
	if j.Lease == nil || j.Lease.PID != ferryPID(p1) || j.Lease.Epoch < 1 || j.Lease.RenewedAt.IsZero() {
		t.Errorf("/status lease: %+v", j.Lease)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	defer func() { cancel(); <-done }()

	start := time.Now()
	p2, _ := leaseRun(t, src.URL(), dst.URL(), "orders", "")
	code, out, errs := p2.wait(t, time.Minute)
	last := lastLine(errs)
	for _, want := range []string{"ferry: error: ", "the job is running elsewhere", "pid " + strconv.Itoa(ferryPID(p1)), "__ferry:orders:lease", "--takeover"} {
		if code != exitFailure || !strings.Contains(last, want) {
			t.Errorf("second process: exit %d, last line lacks %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errs)
		}
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the refusal took %s", took)
	}
	if n := len(src.ClientsNamed(t, "ferry-reader-")); n != 1 {
		t.Errorf("%d replication links on the source: the refused process attached", n)
	}

	// Another job (another source, into db 9) runs beside it.
	src2 := redistest.Start(t)
	src2.Do(t, "SET", "other", "1")
	p3, base3 := leaseRun(t, src2.URL(), dst.URL(), "other", "target_nonempty = \"overwrite\"\ndb_map = { \"0\" = 9 }")
	streaming(t, p3, base3, "other")
	redistest.WaitFor(t, 30*time.Second, func() bool {
		return dst.Do(t, "EVAL", "redis.call('SELECT', 9) return redis.call('GET', 'other')", "0") == "1"
	}, "the other job's key")
	stopOK(t, p3)
	dst.Do(t, "EVAL", "redis.call('SELECT', 9) return redis.call('DEL', 'other')", "0")

	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: time.Minute})
	stopOK(t, p1)
}

// TestLeaseTakeover: a second process started with --takeover takes the
// job from a running one under load; the first stops with exit 1 and the
// documented line, and the target ends equal to the source: nothing applied
// twice in the hand-over, nothing lost.
func TestLeaseTakeover(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t, "--repl-backlog-size", "64mb"), redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 200, Seed: 71})
	const ttl = "lease_ttl = \"3s\"\n"
	p1, base1 := leaseRun(t, src.URL(), dst.URL(), "orders", ttl)
	j1 := streaming(t, p1, base1, "orders")
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	defer func() { cancel(); <-done }()
	time.Sleep(500 * time.Millisecond) // the load under way on both sides

	p2, base2 := leaseRun(t, src.URL(), dst.URL(), "orders", ttl, "--takeover")
	code, out, errs := p1.wait(t, time.Minute)
	last := lastLine(errs)
	if code != exitFailure || !strings.Contains(last, "job taken over by") || !strings.Contains(last, "pid "+strconv.Itoa(ferryPID(p2))) {
		t.Fatalf("first process: exit %d, last line %q\nstdout:\n%s\nstderr:\n%s", code, last, out, errs)
	}
	j2 := streaming(t, p2, base2, "orders")
	if j2.Lease == nil || j2.Lease.Epoch <= j1.Lease.Epoch {
		t.Errorf("epoch after the takeover: %+v, before %+v", j2.Lease, j1.Lease)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: time.Minute})
	stopOK(t, p2)
}

// TestLeaseAfterKill: the owner SIGKILLed. A start on the same machine at
// once, well within lease_ttl and without --takeover, sees that the owner's
// pid runs no more: it takes the job, says so in one line, and resumes
// exactly (a partial resync, the target equal to the source). (A live owner
// is refused: TestLeaseSecondProcessRefused; one on another host, or in
// another pid namespace: lease.TestSameMachineOwner.)
func TestLeaseAfterKill(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t, "--repl-backlog-size", "64mb"), redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	const ttl = "lease_ttl = \"120s\"\n"
	p1, base1 := leaseRun(t, src.URL(), dst.URL(), "orders", ttl)
	streaming(t, p1, base1, "orders")
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond)
	pid1 := ferryPID(p1)
	if err := syscall.Kill(pid1, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	p1.wait(t, 10*time.Second)
	killed := time.Now()

	p2, base2 := leaseRun(t, src.URL(), dst.URL(), "orders", ttl)
	j := streaming(t, p2, base2, "orders")
	if took := time.Since(killed); took > time.Minute {
		t.Errorf("the restart took %s", took)
	}
	cancel()
	<-done
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: time.Minute})
	if len(j.Shards) != 1 || j.Shards[0].PartialSyncs != 1 || j.Shards[0].FullSyncs != 0 {
		t.Errorf("the new owner did not resume from the markers: %+v", j.Shards)
	}
	if err := syscall.Kill(ferryPID(p2), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p2.wait(t, time.Minute)
	gone := fmt.Sprintf("the job's previous owner, pid %d on this host", pid1)
	if code != exitOK || strings.Count(errs, gone) != 1 || !strings.Contains(errs, "is gone") {
		t.Errorf("exit %d, want 0 and one line %q … is gone\nstdout:\n%s\nstderr:\n%s", code, gone, out, errs)
	}
}

// TestLeaseTakeoverFence counts late writes of an old owner. A syncs into
// the target through a proxy under an INCR load; the proxy freezes A's
// target connections, holding batches A has sent; B takes the job over
// (--takeover, straight to the target) and streams; then the proxy lets
// A's held bytes go. None may be applied: the connection they came on was
// killed (and B saw in CLIENT LIST that it was gone, so it did not wait
// lease_ttl); A's writer reconnects, its registration is refused, and A
// exits 1 naming B. The counters on the target end equal to the source's:
// nothing applied twice.
func TestLeaseTakeoverFence(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t, "--repl-backlog-size", "64mb"), redistest.Start(t)
	proxy := redistest.NewProxy(t, dst.Addr)
	// Renewals every 40 s: A learns of the takeover from its writer.
	const ttl = "lease_ttl = \"120s\"\n"
	pA, baseA := leaseRun(t, src.URL(), proxy.URL(), "orders", ttl)
	jA := streaming(t, pA, baseA, "orders")
	ctx, cancel := context.WithCancel(context.Background())
	done := writeLoad(ctx, t, src.Addr)
	defer func() { cancel(); <-done }()
	counter := func(s *redistest.Server, k string) int64 {
		n, _ := strconv.ParseInt(fmt.Sprint(s.Do(t, "EVAL", "return redis.call('GET', KEYS[1]) or '0'", "1", k)), 10, 64)
		return n
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return counter(dst, "ctr:0") > 20 }, "A applying the load")

	proxy.Freeze()
	frozen := counter(dst, "ctr:0")
	time.Sleep(500 * time.Millisecond) // A sends batches the proxy holds
	pB, baseB := leaseRun(t, src.URL(), dst.URL(), "orders", ttl, "--takeover")
	jB := streaming(t, pB, baseB, "orders")
	if jB.Lease == nil || jA.Lease == nil || jB.Lease.Epoch <= jA.Lease.Epoch {
		t.Errorf("epoch after the takeover: %+v, before %+v", jB.Lease, jA.Lease)
	}
	redistest.WaitFor(t, 30*time.Second, func() bool { return counter(dst, "ctr:0") > frozen+20 }, "B applying the load")
	proxy.Resume()
	code, out, errs := pA.wait(t, time.Minute)
	if proxy.HeldBytes() == 0 {
		t.Error("the proxy held nothing of A's: the test proves nothing")
	}
	last := lastLine(errs)
	if code != exitFailure || !strings.Contains(last, "job taken over by") || !strings.Contains(last, "pid "+strconv.Itoa(ferryPID(pB))) ||
		!strings.Contains(errs, "writer connection refused by the lease") {
		t.Errorf("A: exit %d, last line %q\nstdout:\n%s\nstderr:\n%s", code, last, out, errs)
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	<-done
	redistest.WaitFor(t, time.Minute, func() bool {
		for i := range 40 {
			k := "ctr:" + strconv.Itoa(i)
			if d, s := counter(dst, k), counter(src, k); d != s {
				if d > s {
					t.Fatalf("%s is %d on the target, %d on the source: a write applied twice", k, d, s)
				}
				return false
			}
		}
		return true
	}, "the counters on the target equal to the source's")
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{Wait: time.Minute})
	if err := syscall.Kill(ferryPID(pB), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs = pB.wait(t, time.Minute)
	if code != exitOK || !strings.Contains(errs, "took the job's lease over") || strings.Contains(errs, "waiting lease_ttl") {
		t.Errorf("B: exit %d, want 0, a takeover confirmed without waiting\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestLeaseClusterTarget: the same refusal with a 3-master cluster target,
// where each master holds a lease.
func TestLeaseClusterTarget(t *testing.T) {
	t.Parallel()
	src := redistest.Start(t)
	dst := redistest.StartCluster(t, 3, 0)
	src.Do(t, "SET", "k", "v")
	target := "redis://" + dst.Masters[0].Addr
	p1, base1 := leaseRun(t, src.URL(), target, "orders", "")
	streaming(t, p1, base1, "orders")
	for _, m := range dst.Masters {
		if n := m.Do(t, "EVAL", "return #redis.call('KEYS', '__ferry:*:orders:lease')", "0"); n != int64(1) {
			t.Errorf("master %s holds %v leases of the job, want 1", m.Addr, n)
		}
	}
	p2, _ := leaseRun(t, src.URL(), target, "orders", "")
	if code, out, errs := p2.wait(t, time.Minute); code != exitFailure || !strings.Contains(lastLine(errs), "the job is running elsewhere") {
		t.Errorf("second process: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	stopOK(t, p1)
}
