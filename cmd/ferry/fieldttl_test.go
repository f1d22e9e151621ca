package main

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
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

	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", fieldTTLRDB, "--target", dst.URL(), "-c", jobFile(t, ""))
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
	}
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	for _, want := range []string{"ferry: error: ", "has per-field TTLs", "the target cannot hold", `on_unsupported = "drop"`} {
		if !strings.Contains(last, want) {
			t.Errorf("last stderr line %q lacks %q", last, want)
		}
	}
	for _, k := range []string{"h1", "big"} {
		if n := dst.Do(t, "EXISTS", k); n != int64(0) {
			t.Errorf("refused: the target holds %s without its field TTLs", k)
		}
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
