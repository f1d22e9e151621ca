package main

// The CLI contract against real redis-server processes: runtime failures are
// exit 1 with one clear line, successful runs print a one-line summary, and
// SIGTERM stops a sync cleanly. Cases that could hang if the job machinery
// misbehaved run the built binary as a subprocess, under a deadline.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// jobFile writes a job file that keeps ferry's own files in a temp dir,
// logs as JSON and serves no status (unless extra sets status_addr), plus
// extra settings (top-level keys only).
func jobFile(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	if !strings.Contains(extra, "status_addr") {
		extra = "status_addr = \"off\"\n" + extra
	}
	return writeFile(t, dir, "job.toml", fmt.Sprintf("data_dir = %q\nprogress_interval = \"0s\"\nlog_format = \"json\"\n%s\n",
		filepath.Join(dir, "data"), extra))
}

// ferryRunWithin is ferryRun that fails the test when the run takes longer
// than d (a hung in-process run cannot be killed; the goroutine is left).
func ferryRunWithin(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	type result struct {
		code     int
		out, err string
	}
	ch := make(chan result, 1)
	go func() {
		code, out, errs := ferryRun(args...)
		ch <- result{code, out, errs}
	}()
	select {
	case r := <-ch:
		return r.code, r.out, r.err
	case <-time.After(d):
		t.Fatalf("ferry %s: still running after %v", strings.Join(args, " "), d)
		return 0, "", ""
	}
}

// ferryProc is a ferry subprocess.
type ferryProc struct {
	cmd         *exec.Cmd
	out, errb   bytes.Buffer
	done        chan struct{}
	code        int
	description string
}

// startFerry starts the ferry binary; the process is killed (by its PID)
// when the test ends if it is still running.
func startFerry(t *testing.T, args ...string) *ferryProc {
	t.Helper()
	return startFerryEnv(t, nil, args...)
}

// startFerryEnv is startFerry with env added to the environment.
func startFerryEnv(t *testing.T, env []string, args ...string) *ferryProc {
	t.Helper()
	return startFerryTee(t, env, nil, args...)
}

// startFerryTee is startFerryEnv whose stderr also goes to tee (when not
// nil) as it comes, for a test that acts on a log line while ferry runs.
func startFerryTee(t *testing.T, env []string, tee io.Writer, args ...string) *ferryProc {
	t.Helper()
	p := &ferryProc{done: make(chan struct{}), description: "ferry " + strings.Join(args, " ")}
	p.cmd = exec.Command(redistest.FerryBinary(t), args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if tee != nil {
		p.cmd.Stderr = io.MultiWriter(&p.errb, tee)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		p.code = 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s: stderr:\n%s", p.description, tail(p.errb.String(), 40))
		}
	})
	return p
}

// wait waits up to d for the exit; on timeout the process is killed and the
// test fails with its output.
func (p *ferryProc) wait(t *testing.T, d time.Duration) (int, string, string) {
	t.Helper()
	select {
	case <-p.done:
		return p.code, p.out.String(), p.errb.String()
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("%s: still running after %v; killed.\nstdout:\n%s\nstderr:\n%s", p.description, d, p.out.String(), p.errb.String())
		return 0, "", ""
	}
}

// ferryExec runs the ferry binary to its end, at most d.
func ferryExec(t *testing.T, d time.Duration, args ...string) (int, string, string) {
	t.Helper()
	return startFerry(t, args...).wait(t, d)
}

// savedRDB fills a fresh server with every type (two dbs, TTLs, functions),
// saves it and returns the server and a copy of its dump.rdb.
func savedRDB(t *testing.T) (*redistest.Server, string) {
	t.Helper()
	src := redistest.Start(t)
	c := src.Client(t)
	redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: 200, DBs: []int{0, 1}, TTLPct: 20, Seed: 11})
	redistest.LoadFunctionLibrary(t, c)
	src.Do(t, "SAVE")
	b, err := os.ReadFile(filepath.Join(src.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return src, writeFile(t, t.TempDir(), "dump.rdb", string(b))
}

// keyCount is the number of keys of every db, ferry's own __ferry: keys
// (in db 0) left out.
func keyCount(t *testing.T, s *redistest.Server) int64 {
	t.Helper()
	var n int64
	for k, v := range s.Info(t, "keyspace") {
		if !strings.HasPrefix(k, "db") {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if x, ok := strings.CutPrefix(f, "keys="); ok {
				c, _ := strconv.ParseInt(x, 10, 64)
				n += c
			}
		}
	}
	if own, ok := s.Do(t, "EVAL", `return #redis.call("KEYS", "__ferry:*")`, "0").(int64); ok {
		n -= own
	}
	return n
}

func markerExists(t *testing.T, s *redistest.Server, job string) bool {
	t.Helper()
	return s.Do(t, "EXISTS", "__ferry:"+job+":pos").(int64) == 1
}

// assertImported asserts that an import left the target equal to the source
// and removed its marker.
//
// Known bug elsewhere (writer/writer.go): Writer.Drain returns while a batch
// has been popped from the queue by session.next but is not yet in flight
// (session.push), so an import can finish — exit 0, "imported N keys" — before
// its last batch is sent: the target then lacks those keys, or holds the
// marker the late batch wrote after finish removed it. Under -race this hits
// about one small import in three. The test is skipped when it sees exactly
// that, and fails on any other difference. Remove the skip once fixed.
// stale is a key the target held before the import (it keeps its old value
// when the batch is lost), or "".
func assertImported(t *testing.T, src, dst *redistest.Server, job, stale string) {
	t.Helper()
	diffs, _, _, err := redistest.Compare(context.Background(), []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	marker := markerExists(t, dst, job)
	leased := dst.Do(t, "EXISTS", "__ferry:"+job+":lease") == int64(1)
	if len(diffs) == 0 && !marker && !leased {
		return
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	if marker {
		t.Errorf("the import left its marker __ferry:%s:pos on the target", job)
	}
	if leased {
		t.Errorf("the import left its lease __ferry:%s:lease on the target", job)
	}
}

var summaryRE = regexp.MustCompile(`^imported (\d+) keys \(\d+(\.\d+)?(B|KiB|MiB|GiB|TiB) of RDB\) in \d+\.\d s: \d+ keys/s\n$`)

// TestImportRDB: a successful import prints one summary line on stdout,
// exits 0, leaves the target equal to the source and removes its marker.
func TestImportRDB(t *testing.T) {
	src, path := savedRDB(t)
	dst := redistest.Start(t)
	code, out, errs := ferryRunWithin(t, 2*time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkClean(t, out, errs)
	m := summaryRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("stdout is not one summary line: %q", out)
	}
	if want := keyCount(t, src); m[1] != strconv.FormatInt(want, 10) {
		t.Errorf("summary says %s keys, the source has %d: %q", m[1], want, out)
	}
	assertImported(t, src, dst, "default", "")
}

// TestImportBadRDB: damaged files are exit 1 with the offset of the damage;
// a bad checksum says so; a file that is not an RDB says so.
func TestImportBadRDB(t *testing.T) {
	_, path := savedRDB(t)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	dst := redistest.Start(t)
	dir := t.TempDir()
	cfg := jobFile(t, "")
	try := func(name string, data []byte, want ...string) {
		t.Helper()
		dst.Do(t, "FLUSHALL")
		p := writeFile(t, dir, name, string(data))
		code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", p, "--target", dst.URL(), "-c", cfg)
		checkFailure(t, code, out, errs, exitFailure, append([]string{name}, want...)...)
		if out != "" {
			t.Errorf("%s: a failed import printed on stdout: %q", name, out)
		}
	}
	n := len(good)
	// Cut: in the header, right after it, in the aux fields, in the middle of
	// the keys, before the EOF opcode, and in the CRC trailer.
	for _, cut := range []int{5, 9, 20, n / 3, n / 2, 2 * n / 3, n - 9, n - 4, n - 1} {
		try(fmt.Sprintf("cut-%d.rdb", cut), good[:cut], "offset")
	}
	crc := append([]byte(nil), good...)
	crc[n-1] ^= 0xff
	try("crc.rdb", crc, "checksum", "offset")
	try("not.rdb", []byte("this is not an RDB file at all\n"), "not an RDB")
	try("empty.rdb", nil, "offset")
}

// TestTargetErrors: an unreachable target and refused credentials are exit 1
// with one line that says why and never shows the password.
func TestTargetErrors(t *testing.T) {
	_, path := savedRDB(t)
	cfg := jobFile(t, "")
	t.Run("unreachable", func(t *testing.T) {
		port := redistest.FreePort(t)
		code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", fmt.Sprintf("redis://127.0.0.1:%d", port), "-c", cfg)
		checkFailure(t, code, out, errs, exitFailure, "connection refused", strconv.Itoa(port))
	})

	// redistest.Start cannot start a server with --requirepass (its
	// readiness check PINGs without AUTH), so the password is set after.
	dst := redistest.Start(t)
	dst.Do(t, "CONFIG", "SET", "requirepass", "s3cret-Pa55")
	t.Run("wrong-password", func(t *testing.T) {
		code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", "redis://:wr0ng-Pa55@"+dst.Addr, "-c", cfg)
		checkFailure(t, code, out, errs, exitFailure, "wrong password", dst.Addr)
	})
	t.Run("wrong-password-from-env", func(t *testing.T) {
		t.Setenv("FERRY_TEST_TARGET_PW", "env-Pa55wd")
		p := writeFile(t, t.TempDir(), "job.toml", fmt.Sprintf("data_dir = %q\nrdb = %q\n[target]\naddr = %q\npassword = \"${FERRY_TEST_TARGET_PW}\"\n",
			t.TempDir(), path, dst.URL()))
		code, out, errs := ferryRunWithin(t, time.Minute, "sync", "-c", p)
		checkFailure(t, code, out, errs, exitFailure, "wrong password")
	})
	t.Run("no-password", func(t *testing.T) {
		code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", cfg)
		checkFailure(t, code, out, errs, exitFailure, "requires a password", dst.Addr)
	})
	t.Run("right-password", func(t *testing.T) {
		code, out, errs := ferryRunWithin(t, 2*time.Minute, "sync", "--rdb", path, "--target", "redis://:s3cret-Pa55@"+dst.Addr, "-c", cfg)
		if code != exitOK || !summaryRE.MatchString(out) {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		checkClean(t, out, errs)
	})
}

// TestSourceErrors: a source that cannot be reached, refuses the
// credentials or refuses PSYNC is exit 1 with a clear line, promptly. These
// run the binary: a run that hangs is killed and fails the test.
func TestSourceErrors(t *testing.T) {
	t.Parallel()
	authSrc := redistest.Start(t)
	authSrc.Do(t, "CONFIG", "SET", "requirepass", "s3cret-Pa55")
	noPsync := redistest.Start(t, "--rename-command", "PSYNC", "")
	port := redistest.FreePort(t)
	for _, c := range []struct {
		name, source string
		want         []string
		args         []string
	}{
		{"unreachable", fmt.Sprintf("redis://127.0.0.1:%d", port), []string{"source", "connection refused", strconv.Itoa(port)}, nil},
		{"wrong-password", "redis://:wr0ng-Pa55@" + authSrc.Addr, []string{"source", "wrong password", authSrc.Addr}, nil},
		{"no-password", authSrc.URL(), []string{"source", "requires a password", authSrc.Addr}, nil},
		// reader = auto would read this source by scanning instead.
		{"psync-refused", noPsync.URL(), []string{"source", "PSYNC", noPsync.Addr}, []string{"--reader", "psync"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dst := redistest.Start(t)
			start := time.Now()
			code, out, errs := ferryExec(t, time.Minute, append([]string{"sync", "--source", c.source, "--target", dst.URL(), "-c", jobFile(t, "")}, c.args...)...)
			checkFailure(t, code, out, errs, exitFailure, c.want...)
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v to give up", d)
			}
			if n := keyCount(t, dst); n != 0 {
				t.Errorf("the target holds %d keys after a failed start", n)
			}
		})
	}
}

// TestTargetNotEmpty: by default ferry refuses a target that holds keys it
// did not write; overwrite and flush proceed.
func TestTargetNotEmpty(t *testing.T) {
	src, path := savedRDB(t)
	dst := redistest.Start(t)
	key := src.Do(t, "RANDOMKEY").(string)
	dst.Do(t, "SET", key, "stale")

	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, ""))
	checkFailure(t, code, out, errs, exitFailure, "target_nonempty", dst.Addr, "db0: 1 keys")
	if v := dst.Do(t, "GET", key); v != "stale" || keyCount(t, dst) != 1 {
		t.Fatalf("the refused run touched the target: %q = %v, %d keys", key, v, keyCount(t, dst))
	}
	// The same refusal for a live source.
	code, out, errs = ferryRunWithin(t, time.Minute, "sync", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	checkFailure(t, code, out, errs, exitFailure, "target_nonempty")

	code, out, errs = ferryRunWithin(t, 2*time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, `target_nonempty = "overwrite"`))
	if code != exitOK || !summaryRE.MatchString(out) {
		t.Fatalf("overwrite: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	assertImported(t, src, dst, "default", key)

	// flush: a key only on the target goes away.
	dst.Do(t, "SET", "only-on-target", "x")
	code, out, errs = ferryRunWithin(t, 2*time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, `target_nonempty = "flush"`))
	if code != exitOK {
		t.Fatalf("flush: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	assertImported(t, src, dst, "default", "")
}

// TestSyncSIGTERM: SIGTERM stops a running sync with exit 0 after flushing
// what it had; the target then equals the source and keeps the resume
// marker. While it runs, its connections carry their documented names.
func TestSyncSIGTERM(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 300, DBs: []int{0, 2}, TTLPct: 20, Seed: 5})
	want := keyCount(t, src)

	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "term", "-c", jobFile(t, ""))
	redistest.WaitFor(t, time.Minute, func() bool { return keyCount(t, dst) == want }, "the snapshot's %d keys on the target", want)

	// Live writes after the snapshot, including non-idempotent ones.
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		sc.Incr(ctx, "counter")
		sc.RPush(ctx, "log", i)
		sc.Set(ctx, fmt.Sprint("live:", i), i, 0)
	}
	sc.Set(ctx, "last", "1", 0)
	redistest.WaitFor(t, time.Minute, func() bool { return dst.Do(t, "EXISTS", "last").(int64) == 1 }, "the last live write on the target")

	if n := len(src.ClientsNamed(t, "ferry-reader-0")); n != 1 {
		t.Errorf("source: %d connections named ferry-reader-0, want 1", n)
	}
	if n := len(dst.ClientsNamed(t, "ferry-writer-0")); n != 1 {
		t.Errorf("target: %d connections named ferry-writer-0, want 1", n)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, time.Minute)
	if code != exitOK {
		t.Fatalf("exit %d after SIGTERM\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkClean(t, out, errs)
	if !regexp.MustCompile(`^stopped after \d+\.\d s: \d+ keys, \d+ commands applied; resume point [0-9a-f]{40}:\d+ saved on the target\n$`).MatchString(out) {
		t.Errorf("stdout is not one summary line: %q", out)
	}
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	if !markerExists(t, dst, "term") {
		t.Errorf("sync did not keep its resume marker __ferry:term:pos on the target")
	}
}

// TestMigrateInterrupted: a migrate stopped by SIGTERM before the target
// caught up is not a success: exit 1, and no "migrated" line.
func TestMigrateInterrupted(t *testing.T) {
	t.Parallel()
	// The source holds its snapshot back for 30 s: the migrate is stopped
	// while it waits.
	src := redistest.Start(t, "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "30")
	dst := redistest.Start(t)
	src.Do(t, "SET", "k", "v")
	p := startFerry(t, "migrate", "--source", src.URL(), "--target", dst.URL(), "--job", "cut", "-c", jobFile(t, ""))
	redistest.WaitFor(t, 30*time.Second, func() bool { return len(src.ClientsNamed(t, "ferry-reader-0")) == 1 }, "ferry's replica link on the source")
	time.Sleep(200 * time.Millisecond)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, 20*time.Second)
	checkFailure(t, code, out, errs, exitFailure, "migrate interrupted")
	if out != "" {
		t.Errorf("an interrupted migrate printed a result: %q", out)
	}
}
