package job

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hdt3213/rdb/crc64jones"
	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/writer"
)

// appendRDBString appends an RDB length-prefixed string (lengths < 16384).
func appendRDBString(b []byte, s string) []byte {
	if n := len(s); n < 64 {
		b = append(b, byte(n))
	} else {
		b = append(b, 0x40|byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// refusedRDB is an RDB (version 10, Redis 7.0) of n string keys k000… in
// db 0, where key number bad is a hash listpack whose header does not match
// its size: ferry frames it like any other value, the target refuses its
// RESTORE with "Bad data format".
func refusedRDB(t *testing.T, n, bad int) string {
	t.Helper()
	b := []byte("REDIS0010")
	b = append(b, 0xFE, 0) // SELECTDB 0
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		if i == bad {
			b = append(b, 16) // RDB_TYPE_HASH_LISTPACK
			b = appendRDBString(b, k)
			b = appendRDBString(b, string([]byte{0x40, 0, 0, 0, 2, 0, 0x81, 'a', 2, 0x81, 'b', 2, 0xFF}))
			continue
		}
		b = append(b, 0) // string
		b = appendRDBString(b, k)
		b = appendRDBString(b, "value of "+k)
	}
	b = append(b, 0xFF)
	crc := crc64jones.New()
	crc.Write(b)
	b = binary.LittleEndian.AppendUint64(b, crc.Sum64())
	path := filepath.Join(t.TempDir(), fmt.Sprintf("bad-%d-%d.rdb", n, bad))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkMarkerConsistent checks what a failed run leaves: a marker, not
// resumable past the hole, and the target holding exactly the keys the
// marker's unit covers (units are numbered from 1 in file order), the
// refused one excepted.
func checkMarkerConsistent(t *testing.T, c *redis.Client, n, bad int) {
	t.Helper()
	ctx := context.Background()
	v, err := c.Get(ctx, writer.MarkerKey("default")).Result()
	if err != nil {
		t.Fatalf("marker after the failed import: %v", err)
	}
	p, err := writer.ParsePosition(v)
	if err != nil {
		t.Fatal(err)
	}
	if p.State == writer.StateLive {
		t.Fatalf("marker %+v: an import never leaves a resumable marker", p)
	}
	for i := range n {
		k := fmt.Sprintf("k%03d", i)
		want := i != bad && uint64(i+1) <= p.Seq
		got := c.Exists(ctx, k).Val() == 1
		if got != want {
			t.Fatalf("marker %+v: key %s present=%v, want %v", p, k, got, want)
		}
	}
	if p.State != writer.StateDirty {
		t.Fatalf("marker %+v: the refused key's batch ran without it, the marker must say dirty", p)
	}
}

// TestImportRefusedValueFailsEveryTime: an RDB with one value the target
// refuses, imported again and again (the refused value first, in the
// middle, last; in one batch and across pipelined batches): the job fails
// every time — never a success with a key missing — and the marker says
// where the target stands.
func TestImportRefusedValueFailsEveryTime(t *testing.T) {
	redistest.Require(t)
	dst := redistest.Start(t)
	dc := dst.Client(t)
	ctx := context.Background()
	runs := 200
	if testing.Short() {
		runs = 30
	}
	const n = 24
	paths := map[int]string{}
	for _, bad := range []int{0, n / 2, n - 1} {
		paths[bad] = refusedRDB(t, n, bad)
	}
	failures := 0
	start := time.Now()
	for run := range runs {
		bad := []int{0, n / 2, n - 1}[run%3]
		if err := dc.FlushAll(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		c := testConf(t, "", dst.URL())
		c.RDB = paths[bad]
		c.Restore = "always"
		c.BatchMaxOps = []int{512, 3, 1}[(run/3)%3]
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := Run(rctx, Options{Conf: c, Log: testLog(t).Level(99)})
		cancel()
		if err == nil {
			t.Fatalf("run %d (bad key %d, batch %d): the import succeeded with a refused value", run, bad, c.BatchMaxOps)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("run %d: the import hung", run)
		}
		if !strings.Contains(err.Error(), "Bad data format") || !strings.Contains(err.Error(), fmt.Sprintf("k%03d", bad)) {
			t.Fatalf("run %d: want an error naming the key and the refusal, got %v", run, err)
		}
		failures++
		checkMarkerConsistent(t, dc, n, bad)
	}
	t.Logf("%d runs, %d failed as they must (%.1f s)", runs, failures, time.Since(start).Seconds())
}

// TestLiveRefusedCommandNeverSucceeds: a sync whose stream carries a
// command the target refuses — at run time (WRONGTYPE inside the
// transaction) or while queueing (ACL NOPERM) — between other writes, and
// is stopped at once or left to run: it never ends in success with the
// refused write missing unless it stopped before that write (its marker
// then says so), and a failed run leaves a marker that matches the target.
func TestLiveRefusedCommandNeverSucceeds(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc, dc := src.Client(t), dst.Client(t)
	ctx := context.Background()
	aclUser(t, dst, "writer", []string{"+@all", "-append"})
	runs := 40
	if testing.Short() {
		runs = 6
	}
	outcomes := map[string]int{}
	defer func() { t.Logf("%d runs: %v", runs, outcomes) }()
	for run := range runs {
		kind := []string{"wrongtype", "noperm"}[run%2]
		stopAtOnce := run%4 >= 2
		sc.FlushAll(ctx)
		dc.FlushAll(ctx)
		c := testConf(t, src.URL(), dst.URL())
		withUser(&c.Target, "writer")
		c.TargetNonempty = "overwrite"
		c.BatchMaxOps = 4
		dc.RPush(ctx, "clash", "a list on the target")
		ended := make(chan error, 1)
		stop := runSyncEnded(t, Options{Conf: c, Log: testLog(t).Level(99)}, ended)
		redistest.WaitFor(t, 10*time.Second, func() bool { return markerOffset(t, dst, "default") >= 0 }, "the snapshot")
		for i := range 20 {
			sc.Set(ctx, fmt.Sprintf("a%02d", i), i, 0)
		}
		before := infoInt(t, src, "replication", "master_repl_offset")
		if kind == "wrongtype" {
			sc.Incr(ctx, "clash")
		} else {
			sc.Append(ctx, "appended", "x")
		}
		for i := range 20 {
			sc.Set(ctx, fmt.Sprintf("b%02d", i), i, 0)
		}
		var err error
		if stopAtOnce {
			_, err = stop()
		} else {
			select {
			case err = <-ended:
			case <-time.After(20 * time.Second):
				t.Fatalf("run %d (%s): the job did not stop on a refused command", run, kind)
			}
			stop()
		}
		p, found := readMarker(t, dc)
		if err == nil {
			// Only a stop before the refused command reached the target
			// may end well, and then the marker is before it.
			if !found || p.State != writer.StateLive || p.Offset > before {
				t.Fatalf("run %d (%s): the sync ended in success past a refused command (marker %+v, refused at offset %d)", run, kind, p, before)
			}
			outcomes["stopped before the refused command"]++
			continue
		}
		if !found {
			t.Fatalf("run %d (%s): no marker after the failure", run, kind)
		}
		outcomes[kind+" failed, marker "+string(p.State)]++
		switch p.State {
		case writer.StateDirty:
		case writer.StateLive:
			// Exact: nothing past the refused command ran.
			if p.Offset > before {
				t.Fatalf("run %d (%s): live marker %+v past the refused command at %d", run, kind, p, before)
			}
			if n := dc.Exists(ctx, "b00").Val(); n != 0 {
				t.Fatalf("run %d (%s): a write after the refused command is on the target, the marker %+v says live", run, kind, p)
			}
		default:
			t.Fatalf("run %d (%s): marker %+v", run, kind, p)
		}
	}
}

func readMarker(t *testing.T, c *redis.Client) (writer.Position, bool) {
	t.Helper()
	v, err := c.Get(context.Background(), writer.MarkerKey("default")).Result()
	if errors.Is(err, redis.Nil) {
		return writer.Position{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	p, err := writer.ParsePosition(v)
	if err != nil {
		t.Fatal(err)
	}
	return p, true
}

// TestSkipWithFence: on_error = "skip" with the fence on: a command the
// target refuses while queueing (ACL: no SETRANGE) aborts its transaction;
// the rest of the group and the marker are applied, the refused command is
// counted as skipped (every time it comes), and nothing else is lost or
// doubled, under a load of non-idempotent commands.
func TestSkipWithFence(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc, dc := src.Client(t), dst.Client(t)
	ctx := context.Background()
	aclUser(t, dst, "nosetrange", []string{"+@all", "-setrange"})
	c := testConf(t, src.URL(), dst.URL())
	withUser(&c.Target, "nosetrange")
	c.OnError = "skip"
	var state func() State
	stop := runSync(t, Options{Conf: c, Log: testLog(t), Observe: func(f func() State) { state = f }})
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	lctx, cancel := context.WithCancel(ctx)
	l := runLoad(lctx, t, sc)
	const refused = 30
	for i := range refused {
		sc.Set(ctx, fmt.Sprint("before", i), i, 0)
		sc.SetRange(ctx, "ranged", int64(i), "x")
		sc.Set(ctx, fmt.Sprint("after", i), i, 0)
		sc.Incr(ctx, "incremented")
	}
	cancel()
	sc.Del(ctx, "ranged") // the one key the target cannot hold
	waitCaughtUp(t, src, dst, "default", 30*time.Second)
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	checkCounters(t, dc, l)
	if n := state().Writers[0].Stats.Skipped; n != refused {
		t.Errorf("skipped = %d, want %d", n, refused)
	}
	if p, ok := readMarker(t, dc); !ok || p.State != writer.StateLive {
		t.Errorf("marker %+v, %v", p, ok)
	}
	if _, err := stop(); err != nil {
		t.Fatal(err)
	}
}
