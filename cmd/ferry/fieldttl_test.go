package main

import (
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/resp"
)

// testdata/hash-field-ttl.rdb was saved (SAVE, RDB version 12) by a Redis
// built from the unstable branch after:
//
//	HSET h1 a 1 b 2 c 3;  HEXPIREAT h1 4102444800 FIELDS 2 a b
//	HSET plain x 1;  SET s v
//	HSET big f1 v1 … f300 v300;  HEXPIREAT big 4102444800 FIELDS 1 f7
//
// (field TTLs in 2100, so the fixture does not age).
const fieldTTLRDB = "testdata/hash-field-ttl.rdb"

// TestFieldTTLsIntoOldTarget: hashes with per-field TTLs into Redis 7.0,
// which cannot hold them. By default the job stops before writing such a
// hash, with one line saying why and what to set; with on_unsupported =
// "drop" the hashes are copied without their field TTLs and the summary
// counts what was dropped.
func TestFieldTTLsIntoOldTarget(t *testing.T) {
	dst := redistest.Start(t)

	// Refused before anything is written: not a key, not a marker, and
	// with target_nonempty = "flush" not even the flush.
	dst.Do(t, "SET", "mine", "kept")
	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", fieldTTLRDB, "--target", dst.URL(), "-c", jobFile(t, `target_nonempty = "flush"`))
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
	}
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"ferry: error: ", "holds what the target cannot hold: 2 hash(es) with per-field TTLs", "the target cannot hold", "nothing was written", `on_unsupported = "drop"`} {
		if !strings.Contains(last, want) {
			t.Errorf("last stderr line %q lacks %q", last, want)
		}
	}
	if n := dst.Do(t, "DBSIZE"); n != int64(1) || dst.Do(t, "GET", "mine") != "kept" {
		t.Errorf("refused: the target was written to: DBSIZE %v, keys %v", n, dst.Do(t, "KEYS", "*"))
	}

	dst.Do(t, "FLUSHALL")
	code, out, errs = ferryRunWithin(t, time.Minute, "sync", "--rdb", fieldTTLRDB, "--target", dst.URL(), "-c", jobFile(t, `on_unsupported = "drop"`))
	if code != exitOK {
		t.Fatalf("drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(out, "; 3 hash field TTLs dropped: the target cannot hold them (on_unsupported = drop)") {
		t.Errorf("drop: summary does not count the dropped field TTLs: %q", out)
	}
	if v := dst.Do(t, "HGET", "h1", "a"); v != "1" {
		t.Errorf("drop: h1 a = %v, want 1", v)
	}
	if n := dst.Do(t, "HLEN", "big"); n != int64(300) {
		t.Errorf("drop: big has %v fields, want 300", n)
	}
	if v := dst.Do(t, "GET", "s"); v != "v" {
		t.Errorf("drop: s = %v, want v", v)
	}
}

// TestFieldTTLCommandsIntoOldTarget: the same through the stream. A source
// (faked: Debian's 7.0 has no HPEXPIRE) replicates HPEXPIRE; the 7.0 target
// does not know it. By default the job stops naming it; with on_unsupported
// = "drop" the command is left out, the hash copied, the drop counted.
func TestFieldTTLCommandsIntoOldTarget(t *testing.T) {
	dst := redistest.Start(t)
	rdb := emptyRDB(t, dst)
	stream := "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n" +
		"*4\r\n$4\r\nHSET\r\n$1\r\nh\r\n$1\r\nf\r\n$1\r\nv\r\n" +
		"*6\r\n$8\r\nHPEXPIRE\r\n$1\r\nh\r\n$6\r\n100000\r\n$6\r\nFIELDS\r\n$1\r\n1\r\n$1\r\nf\r\n" +
		"*3\r\n$3\r\nSET\r\n$4\r\ndone\r\n$1\r\n1\r\n"
	src := newFakePeer(t, func(c *peerConn, args []string) {
		if strings.EqualFold(args[0], "PSYNC") {
			c.Write([]byte("+FULLRESYNC " + fakeReplID + " 0\r\n$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb) + stream))
			return
		}
		answer(c, args)
	})

	p := startFerry(t, "sync", "--source", "redis://"+src.Addr, "--target", dst.URL(), "--job", "fttl", "-c", jobFile(t, ""))
	code, _, errs := p.wait(t, 30*time.Second)
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if last := lines[len(lines)-1]; code != exitFailure || !strings.Contains(last, "HPEXPIRE") {
		t.Fatalf("refuse: exit %d, want %d with a last line naming HPEXPIRE\nstderr:\n%s", code, exitFailure, errs)
	}

	dst.Do(t, "FLUSHALL")
	p = startFerry(t, "sync", "--source", "redis://"+src.Addr, "--target", dst.URL(), "--job", "fttl2", "-c", jobFile(t, `on_unsupported = "drop"`))
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "done") == int64(1) }, "the stream applied")
	if err := syscall.Kill(ferryPID(p), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, out, errs := p.wait(t, 30*time.Second)
	if code != exitOK {
		t.Fatalf("drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if v := dst.Do(t, "HGET", "h", "f"); v != "v" {
		t.Errorf("drop: h f = %v, want v", v)
	}
	if !strings.Contains(out, "; 1 hash field TTLs dropped") {
		t.Errorf("drop: the summary does not count the dropped field TTL: %q", out)
	}
}

// TestFieldTTLSourceIntoOldTarget: a live source that says (INFO keyspace
// subexpiry, Redis 7.4+) it holds hashes with field TTLs is refused before
// ferry attaches to it as a replica or writes anything to the target.
func TestFieldTTLSourceIntoOldTarget(t *testing.T) {
	dst := redistest.Start(t)
	var psync atomic.Bool
	src := newFakePeer(t, func(c *peerConn, args []string) {
		switch {
		case strings.EqualFold(args[0], "PSYNC"):
			psync.Store(true)
			c.Write([]byte("-ERR not expected\r\n"))
		case strings.EqualFold(args[0], "INFO") && len(args) > 1 && strings.EqualFold(args[1], "keyspace"):
			c.Write(resp.AppendBulkString(nil, "# Keyspace\r\ndb0:keys=5,expires=0,avg_ttl=0,subexpiry=2\r\ndb3:keys=1,expires=0,avg_ttl=0,subexpiry=1\r\n"))
		default:
			answer(c, args)
		}
	})
	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--source", "redis://"+src.Addr, "--target", dst.URL(), "--job", "fttl", "-c", jobFile(t, ""))
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	if code != exitFailure || !strings.Contains(last, "the source holds what the target cannot hold: 3 hash(es) with per-field TTLs") || !strings.Contains(last, "on_unsupported") {
		t.Fatalf("exit %d, want %d with a last line counting the hashes\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
	}
	if psync.Load() {
		t.Error("ferry attached to the source (PSYNC) before refusing it")
	}
	if n := dst.Do(t, "DBSIZE"); n != int64(0) {
		t.Errorf("the target was written to: %v", dst.Do(t, "KEYS", "*"))
	}
}

// TestFieldTTLsFromNewerSource: a real Redis 7.4+ source into Debian's 7.0.
// Refused before anything is written (the source's INFO keyspace counts the
// hashes); with on_unsupported = "drop" migrated, the drops counted, and
// verify reports them as lost field TTLs. Needs FERRY_REDIS_SERVER_NEW.
func TestFieldTTLsFromNewerSource(t *testing.T) {
	src := redistest.StartNewer(t)
	dst := redistest.Start(t)
	src.Do(t, "HSET", "h1", "a", "1", "b", "2")
	src.Do(t, "HPEXPIREAT", "h1", "4102444800000", "FIELDS", "2", "a", "b")
	src.Do(t, "HSET", "h2", "x", "1")
	src.Do(t, "HPEXPIRE", "h2", "3600000", "FIELDS", "1", "x")
	src.Do(t, "SET", "s", "v")

	code, out, errs := ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(errs, "the source holds what the target cannot hold: 2 hash(es) with per-field TTLs") {
		t.Fatalf("refuse: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if n := dst.Do(t, "DBSIZE"); n != int64(0) {
		t.Fatalf("refuse: the target was written to: %v", dst.Do(t, "KEYS", "*"))
	}

	code, out, errs = ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, `on_unsupported = "drop"`))
	if code != exitOK || !strings.Contains(out, "3 hash field TTLs dropped") {
		t.Fatalf("drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, out, errs = ferryRunWithin(t, time.Minute, "verify", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(errs, "lost_field_ttl 2") {
		t.Fatalf("verify: exit %d, want 1 with lost_field_ttl 2\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestFunctionsIntoTargetWithout: function libraries into a target without
// FUNCTION (Redis < 7.0; here a 7.0 with the command renamed away). From an
// RDB file and from a live source: refused before anything is written; with
// on_unsupported = "drop" copied without them, the drops counted, a
// FUNCTION LOAD of the stream left out too.
func TestFunctionsIntoTargetWithout(t *testing.T) {
	src, path := savedRDB(t)
	dst := redistest.Start(t, "--rename-command", "FUNCTION", "")

	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(lastLine(errs), "1 function libraries (the target has no FUNCTION") || !strings.Contains(lastLine(errs), "nothing was written") {
		t.Fatalf("rdb, refuse: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	code, out, errs = ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitFailure || !strings.Contains(lastLine(errs), "the source holds what the target cannot hold: 1 function libraries") {
		t.Fatalf("live, refuse: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if n := dst.Do(t, "DBSIZE"); n != int64(0) {
		t.Fatalf("refused: the target was written to: %v", n)
	}

	code, out, errs = ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, `on_unsupported = "drop"`))
	if code != exitOK || !strings.Contains(out, "; 1 function libraries dropped: the target cannot hold them") {
		t.Fatalf("rdb, drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// The target has no FUNCTION to be asked with: every key, value and
	// TTL is compared, the libraries are what was dropped.
	redistest.AssertSameDataOpts(t, []string{src.Addr}, []string{dst.Addr}, redistest.CompareOptions{IgnoreFunctions: true})

	// Live, drop: a library loaded while the sync runs is left out as well.
	dst.Do(t, "FLUSHALL")
	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "fn", "-c", jobFile(t, `on_unsupported = "drop"`))
	redistest.WaitFor(t, 30*time.Second, func() bool {
		select {
		case <-p.done:
			code, out, errs := p.wait(t, 0)
			t.Fatalf("live, drop: ended early: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		default:
		}
		return dst.Do(t, "DBSIZE").(int64) > src.Do(t, "DBSIZE").(int64) // and the marker
	}, "the snapshot on the target")
	src.Do(t, "FUNCTION", "LOAD", "#!lua name=later\nredis.register_function('later', function() return 1 end)")
	src.Do(t, "SET", "after-load", "1")
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "after-load") == int64(1) }, "the write after FUNCTION LOAD")
	if err := syscall.Kill(ferryPID(p), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, out, errs = p.wait(t, 30*time.Second)
	if code != exitOK || !strings.Contains(out, "; 2 function libraries dropped") {
		t.Fatalf("live, drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestModuleValuesIntoTargetWithout: an RDB holding a value of a module
// type (testdata/module-value.rdb, written by rdb's TestWriteModuleFixture:
// a=1, mod:k of module type "ferrytest", b=2) into a target without
// modules: the job stops at that key with one line naming it and the fix;
// with on_unsupported = "drop" the other keys are copied and the module
// value counted.
func TestModuleValuesIntoTargetWithout(t *testing.T) {
	const fixture = "testdata/module-value.rdb"
	dst := redistest.Start(t)
	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", fixture, "--target", dst.URL(), "-c", jobFile(t, ""))
	last := lastLine(errs)
	for _, want := range []string{`"mod:k"`, "module type ferrytest", "no modules loaded", `on_unsupported = "drop"`} {
		if code != exitFailure || !strings.Contains(last, want) {
			t.Errorf("refuse: exit %d, last line lacks %q\nstdout:\n%s\nstderr:\n%s", code, want, out, errs)
		}
	}
	dst.Do(t, "FLUSHALL")
	code, out, errs = ferryRunWithin(t, time.Minute, "sync", "--rdb", fixture, "--target", dst.URL(), "-c", jobFile(t, `on_unsupported = "drop"`))
	if code != exitOK || !strings.Contains(out, "; 1 module values dropped: the target cannot hold them") {
		t.Fatalf("drop: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if a, b := dst.Do(t, "GET", "a"), dst.Do(t, "GET", "b"); a != "1" || b != "2" || dst.Do(t, "DBSIZE") != int64(2) {
		t.Errorf("drop: a=%v b=%v keys %v", a, b, dst.Do(t, "KEYS", "*"))
	}
}

// TestWarnsOfCommandsTargetLacks: at the start, the write commands the
// source knows and the target does not are named in one warning; a migrate
// whose stream does not use them succeeds.
func TestWarnsOfCommandsTargetLacks(t *testing.T) {
	src := redistest.Start(t)
	dst := redistest.Start(t, "--rename-command", "APPEND", "", "--rename-command", "SETRANGE", "")
	src.Do(t, "SET", "k", "v")
	code, out, errs := ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	var warn string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "the source knows write commands the target does not") {
			warn = l
		}
	}
	if !strings.Contains(warn, `"APPEND"`) || !strings.Contains(warn, `"SETRANGE"`) || !strings.Contains(warn, `"count":2`) {
		t.Errorf("no warning naming APPEND and SETRANGE:\n%s", errs)
	}
}
