package main

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// stopCase starts a sync into a target behind a proxy, with stop_timeout
// 2s and a status server, and waits until the snapshot is on the target.
func stopCase(t *testing.T) (src, dst *redistest.Server, px *redistest.Proxy, p *ferryProc, base string) {
	t.Helper()
	src, dst = redistest.Start(t), redistest.Start(t)
	px = redistest.NewProxy(t, dst.Addr)
	src.Do(t, "SET", "k", "v")
	addr := freeStatusAddr(t)
	p = startFerry(t, "sync", "--source", src.URL(), "--target", px.URL(), "-c",
		jobFile(t, fmt.Sprintf("stop_timeout = \"2s\"\nstatus_addr = %q\n[target]\ndial_timeout = \"1s\"\n", addr)))
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "k").(int64) == 1 }, "the snapshot on the target")
	return src, dst, px, p, "http://" + addr
}

// writeSome makes writes ferry must flush on a stop.
func writeSome(t *testing.T, src *redistest.Server) {
	t.Helper()
	c := src.Client(t)
	for i := range 50 {
		c.Incr(context.Background(), fmt.Sprint("n", i%5))
	}
}

// stopWithin sends SIGTERM and checks that ferry ends within stop_timeout
// (plus a loose margin for a loaded machine) with exit 1 and one last line
// saying what it could not flush.
func stopWithin(t *testing.T, p *ferryProc, wants ...string) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, 30*time.Second)
	took := time.Since(start)
	if took > 2*time.Second+5*time.Second {
		t.Errorf("stopped after %s with stop_timeout 2s", took)
	}
	last := lastLine(errs)
	if code != exitFailure || !strings.HasPrefix(last, "ferry: error: ") {
		t.Fatalf("exit %d, last line %q; want exit 1 and an error line\nstdout:\n%s\nstderr:\n%s", code, last, out, errs)
	}
	for _, w := range wants {
		if !strings.Contains(last, w) {
			t.Errorf("last line %q does not say %q", last, w)
		}
	}
	if out != "" {
		t.Errorf("a stop that did not flush printed a result: %q", out)
	}
	t.Logf("stopped in %s: %s", took.Round(time.Millisecond), last)
}

// TestStopTargetNeverAnswers: SIGTERM while the target accepts and never
// answers: ferry ends within stop_timeout and says what it did not flush.
func TestStopTargetNeverAnswers(t *testing.T) {
	t.Parallel()
	src, _, px, p, _ := stopCase(t)
	px.Freeze()
	writeSome(t, src)
	time.Sleep(300 * time.Millisecond)
	stopWithin(t, p, "stop_timeout 2s", "not acknowledged by target "+px.Addr)
}

// TestStopTargetDown: SIGTERM while the target is down and the writer is
// in its reconnect loop; /readyz meanwhile names the writer once it has been
// down past the threshold.
func TestStopTargetDown(t *testing.T) {
	t.Parallel()
	src, dst, px, p, base := stopCase(t)
	dst.Kill(t)
	px.KillAll()
	writeSome(t, src)
	redistest.WaitFor(t, 30*time.Second, func() bool {
		code, body, err := httpGet(base + "/readyz")
		return err == nil && code == 503 && strings.Contains(body, "ferry-writer-0") && strings.Contains(body, "disconnected for")
	}, "/readyz to report the writer down")
	if code, _, _ := httpGet(base + "/livez"); code != 200 {
		t.Errorf("/livez %d while the target is down", code)
	}
	stopWithin(t, p, "stop_timeout 2s", "unreachable for")
}

// TestStopSecondSignal: a second signal ends ferry at once, with exit 1.
func TestStopSecondSignal(t *testing.T) {
	t.Parallel()
	src, _, px, p, _ := stopCase(t)
	px.Freeze()
	writeSome(t, src)
	time.Sleep(300 * time.Millisecond)
	p.cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGINT)
	code, _, errs := p.wait(t, 30*time.Second)
	if took := time.Since(start); took > time.Second {
		t.Errorf("exited %s after the second signal", took)
	}
	if last := lastLine(errs); code != exitFailure || !strings.Contains(last, "second signal") {
		t.Errorf("exit %d, last line %q", code, last)
	}
}

// TestPermanentErrorBinary: a password for a target that has none ends
// ferry within seconds, exit 1, one line naming the server and the fix.
func TestPermanentErrorBinary(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	for _, cmd := range []string{"sync", "migrate"} {
		start := time.Now()
		code, out, errs := ferryExec(t, 30*time.Second, cmd, "--source", src.URL(), "--target", "redis://:secret@"+dst.Addr, "-c", jobFile(t, ""))
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("%s: took %s", cmd, took)
		}
		checkFailure(t, code, out, errs, exitFailure, dst.Addr, "no password", "fix:")
	}
}

// TestStopDuringSnapshot: SIGTERM while the snapshot is being applied ends
// ferry within stop_timeout; started again, the job finishes with the
// target equal to the source (the partial snapshot is resumed or redone and
// swept, never left half).
func TestStopDuringSnapshot(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	src.Do(t, "DEBUG", "POPULATE", "400000", "snap", "64")
	cfg := jobFile(t, "stop_timeout = \"2s\"\n")
	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "snap", "-c", cfg)
	redistest.WaitFor(t, 60*time.Second, func() bool { return dst.Do(t, "DBSIZE").(int64) > 1000 }, "the snapshot under way")
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, _, errs := p.wait(t, 30*time.Second)
	if took := time.Since(start); took > 2*time.Second+5*time.Second {
		t.Errorf("stopped %s after SIGTERM with stop_timeout 2s", took)
	}
	if code != exitOK && code != exitFailure {
		t.Fatalf("exit %d after SIGTERM during the snapshot\n%s", code, errs)
	}
	n := dst.Do(t, "DBSIZE").(int64)
	t.Logf("exit %d with %d of 400000 keys on the target: %s", code, n, lastLine(errs))

	code, out, errs := ferryRunWithin(t, 2*time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "--job", "snap", "-c", cfg)
	if code != exitOK {
		t.Fatalf("migrate after the stopped sync: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
}
