package main

import (
	"strings"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestSourceKeysInFerryNamespace: a source key under __ferry: is copied like
// any other (another job's marker on a source that is itself a target), and
// one with the name of this job's own keys is refused with one line — never
// copied and then silently overwritten or deleted.
func TestSourceKeysInFerryNamespace(t *testing.T) {
	src := redistest.Start(t)
	dst := redistest.Start(t)
	src.Do(t, "SET", "plain", "1")
	src.Do(t, "SET", "__ferry:other:pos", "theirs")
	src.Do(t, "HSET", "__ferry:notes", "a", "b")

	code, out, errs := ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "--job", "orders", "-c", jobFile(t, ""))
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if v := dst.Do(t, "GET", "__ferry:other:pos"); v != "theirs" {
		t.Errorf("target __ferry:other:pos = %v, want the source's value", v)
	}
	if v := dst.Do(t, "HGET", "__ferry:notes", "a"); v != "b" {
		t.Errorf("target __ferry:notes a = %v, want b", v)
	}
	// verify compares them: a difference there is reported.
	dst.Do(t, "HSET", "__ferry:notes", "a", "changed")
	code, out, errs = ferryRunWithin(t, time.Minute, "verify", "--source", src.URL(), "--target", dst.URL())
	if code != exitFailure || !strings.Contains(out+errs, "__ferry:notes") {
		t.Errorf("verify with __ferry:notes changed on the target: exit %d, want %d and the key named\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
	}

	// The snapshot holds a key named like the job's marker.
	dst.Do(t, "FLUSHALL")
	src.Do(t, "SET", "__ferry:orders:pos", "mine")
	code, out, errs = ferryRunWithin(t, time.Minute, "migrate", "--source", src.URL(), "--target", dst.URL(), "--job", "orders", "-c", jobFile(t, ""))
	if code != exitFailure {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
	}
	checkOwnKeyLine(t, errs)

	// The same key written while a sync streams.
	src.Do(t, "DEL", "__ferry:orders:pos")
	dst.Do(t, "FLUSHALL")
	p := startFerry(t, "sync", "--source", src.URL(), "--target", dst.URL(), "--job", "orders", "-c", jobFile(t, ""))
	redistest.WaitFor(t, 30*time.Second, func() bool { return dst.Do(t, "EXISTS", "plain") == int64(1) }, "the snapshot on the target")
	src.Do(t, "SET", "__ferry:orders:pos", "mine")
	code, _, errs = p.wait(t, 30*time.Second)
	if code != exitFailure {
		t.Fatalf("sync: exit %d, want %d\nstderr:\n%s", code, exitFailure, errs)
	}
	checkOwnKeyLine(t, errs)
}

func checkOwnKeyLine(t *testing.T, errs string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "ferry: error: ") || !strings.Contains(last, `"__ferry:orders:pos"`) ||
		!strings.Contains(last, `has the name of a key ferry keeps for job "orders"`) {
		t.Errorf("last stderr line %q does not name the key and the job", last)
	}
}
