package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// aofSource is a redis-server with appendonly yes (appendfsync always, so
// the files hold every acknowledged write): filled with every type in two
// dbs and a function library, its AOF rewritten (the base: RDB or AOF
// format), then written to again so that the incremental file holds
// INCR, RPUSH, transactions, SELECT, EXPIRE, DEL and a FUNCTION LOAD.
func aofSource(t *testing.T, preamble string, dbs []int, cluster bool) *redistest.Server {
	t.Helper()
	// Without the preamble, timestamp annotations (#TS:…) are on too.
	src := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always", "--aof-use-rdb-preamble", preamble,
		"--aof-timestamp-enabled", map[string]string{"yes": "no", "no": "yes"}[preamble])
	c := src.Client(t)
	redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: 300, DBs: dbs, TTLPct: 20, Seed: 7})
	redistest.LoadFunctionLibrary(t, c)
	src.Do(t, "BGREWRITEAOF")
	redistest.WaitFor(t, 30*time.Second, func() bool {
		p := src.Info(t, "persistence")
		return p["aof_rewrite_in_progress"] == "0" && p["aof_rewrite_scheduled"] == "0" && p["aof_last_bgrewrite_status"] == "ok"
	}, "AOF rewrite")
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		k := fmt.Sprintf("{t}counter:%d", i%7)
		must(t, c.Incr(ctx, k).Err())
		must(t, c.RPush(ctx, "{t}list:new", i).Err())
		must(t, c.HSet(ctx, "{t}hash:new", fmt.Sprint(i%13), i).Err())
		if i%20 == 0 {
			_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.IncrBy(ctx, "{t}tx:a", 5)
				p.LPush(ctx, "{t}tx:b", i)
				p.Expire(ctx, "{t}tx:b", time.Hour)
				return nil
			})
			must(t, err)
		}
	}
	must(t, c.Del(ctx, "{t}counter:3").Err())
	must(t, c.FunctionLoadReplace(ctx, strings.ReplaceAll(redistest.FunctionLibraryCode, "ferrytest", "ferrytest2")).Err())
	if !cluster {
		c1 := redis.NewClient(&redis.Options{Addr: src.Addr, DB: 1, Protocol: 2})
		defer c1.Close()
		must(t, c1.Set(ctx, "in-db1", "v", 0).Err())
		must(t, c1.Incr(ctx, "n-db1").Err())
	}
	return src
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// copyAOFDir copies the server's appendonlydir (a snapshot of it) to a new
// directory and returns its path and the files' names.
func copyAOFDir(t *testing.T, src *redistest.Server) string {
	t.Helper()
	from := filepath.Join(src.Dir, "appendonlydir")
	to := filepath.Join(t.TempDir(), "appendonlydir")
	must(t, os.MkdirAll(to, 0o755))
	ents, err := os.ReadDir(from)
	must(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(to, e.Name()), b, 0o644))
	}
	return to
}

// aofFiles returns the base and the last incremental file of a copied
// appendonlydir.
func aofFiles(t *testing.T, dir string) (base, incr string) {
	t.Helper()
	m, err := os.ReadFile(filepath.Join(dir, "appendonly.aof.manifest"))
	must(t, err)
	for _, l := range strings.Split(string(m), "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && f[5] == "b" {
			base = filepath.Join(dir, f[1])
		}
		if len(f) == 6 && f[5] == "i" {
			incr = filepath.Join(dir, f[1])
		}
	}
	if base == "" || incr == "" {
		t.Fatalf("manifest without base or incremental file:\n%s", m)
	}
	return base, incr
}

// aofSummaryRE: [1] keys (with an RDB base), [2] commands.
var aofSummaryRE = regexp.MustCompile(`^imported (?:(\d+) keys \(\d+(?:\.\d+)?(?:B|KiB|MiB|GiB|TiB) of RDB\) and )?(\d+) commands from the AOF in \d+\.\d s(?:;.*)?\n$`)

func importAOF(t *testing.T, path, target, extra string) (int, string, string) {
	t.Helper()
	code, out, errs := ferryRunWithin(t, 2*time.Minute, "sync", "--aof", path, "--target", target, "-c", jobFile(t, extra))
	checkClean(t, out, errs)
	return code, out, errs
}

// TestImportAOF: the appendonlydir of a Redis 7.0 server (RDB base, and an
// AOF-format base with aof-use-rdb-preamble no), imported into an empty
// target, gives the server's data; exit 0 and one summary line. A rerun
// onto the filled target is refused (target_nonempty); with flush it
// imports again.
func TestImportAOF(t *testing.T) {
	for _, preamble := range []string{"yes", "no"} {
		t.Run("preamble-"+preamble, func(t *testing.T) {
			src := aofSource(t, preamble, []int{0, 1}, false)
			dir := copyAOFDir(t, src)
			base, _ := aofFiles(t, dir)
			if isRDB := bytes.HasPrefix(readFile(t, base), []byte("REDIS")); isRDB != (preamble == "yes") {
				t.Fatalf("base %s: RDB %v with aof-use-rdb-preamble %s", base, isRDB, preamble)
			}
			dst := redistest.Start(t)
			code, out, errs := importAOF(t, dir, dst.URL(), "")
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			m := aofSummaryRE.FindStringSubmatch(out)
			if m == nil || m[2] == "0" || (m[1] != "") != (preamble == "yes") {
				t.Fatalf("stdout is not one summary line with commands: %q", out)
			}
			if preamble == "yes" && m[1] == "0" {
				t.Errorf("no keys from the RDB base: %q", out)
			}
			assertImported(t, src, dst, "default", "")

			// A rerun onto the target it filled: refused, nothing written.
			code, out, errs = importAOF(t, dir, dst.URL(), "")
			if code != exitFailure || !strings.Contains(errs, "target not empty") {
				t.Fatalf("rerun: exit %d, want %d with target not empty\nstdout:\n%s\nstderr:\n%s", code, exitFailure, out, errs)
			}
			redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
			// With flush: emptied, then imported again.
			code, out, errs = importAOF(t, dir, dst.URL(), `target_nonempty = "flush"`)
			if code != exitOK {
				t.Fatalf("rerun with flush: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			assertImported(t, src, dst, "default", "")

			// The same files as one legacy appendonly.aof (base + incremental:
			// with or without an RDB preamble).
			_, incr := aofFiles(t, dir)
			single := filepath.Join(t.TempDir(), "appendonly.aof")
			must(t, os.WriteFile(single, append(readFile(t, base), readFile(t, incr)...), 0o644))
			dst2 := redistest.Start(t)
			code, out, errs = importAOF(t, single, dst2.URL(), "")
			if code != exitOK || aofSummaryRE.FindString(out) == "" {
				t.Fatalf("single file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			assertImported(t, src, dst2, "default", "")

			if preamble == "yes" {
				// --rdb on an AOF with an RDB preamble: refused before
				// anything is written, telling to use --aof.
				dst3 := redistest.Start(t)
				code, out, errs = ferryRunWithin(t, time.Minute, "sync", "--rdb", single, "--target", dst3.URL(), "-c", jobFile(t, ""))
				if code != exitFailure || !strings.Contains(errs, "AOF with an RDB preamble") || !strings.Contains(errs, "--aof "+single) {
					t.Fatalf("--rdb on an AOF: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
				}
				if n := dst3.Do(t, "DBSIZE").(int64); n != 0 {
					t.Errorf("--rdb on an AOF wrote %d keys", n)
				}
			}
		})
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return b
}

// TestImportAOFTruncated: a last file cut inside a command (and one cut
// inside a MULTI/EXEC) imports what comes before, like redis-server with
// aof-load-truncated yes: exit 0, the target equals the server (which never
// acknowledged the cut command), and the summary names file and offset.
func TestImportAOFTruncated(t *testing.T) {
	src := aofSource(t, "yes", []int{0}, false)
	for _, tc := range []struct{ name, tail string }{
		{"command", "*3\r\n$3\r\nSET\r\n$3\r\ncut\r\n$5\r\nval"},
		{"multi", "*1\r\n$5\r\nMULTI\r\n*2\r\n$4\r\nINCR\r\n$4\r\n{t}x\r\n*3\r\n$3\r\nSET\r\n$3\r\ncut"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyAOFDir(t, src)
			_, incr := aofFiles(t, dir)
			whole := int64(len(readFile(t, incr)))
			f, err := os.OpenFile(incr, os.O_APPEND|os.O_WRONLY, 0)
			must(t, err)
			_, err = f.WriteString(tc.tail)
			must(t, err)
			must(t, f.Close())
			dst := redistest.Start(t)
			code, out, errs := importAOF(t, dir, dst.URL(), "")
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			t.Logf("stdout: %s", out)
			want := fmt.Sprintf("warning: %s was cut off at offset %d: the last %d bytes were left out", incr, whole, len(tc.tail))
			if !strings.Contains(out, want) || aofSummaryRE.FindString(out) == "" {
				t.Fatalf("stdout %q lacks %q", out, want)
			}
			assertImported(t, src, dst, "default", "")
		})
	}
}

// TestImportAOFDamaged: damage in the middle of a file is an error naming
// the file and the offset, exit 1.
func TestImportAOFDamaged(t *testing.T) {
	src := aofSource(t, "no", []int{0}, false)
	dir := copyAOFDir(t, src)
	_, incr := aofFiles(t, dir)
	b := readFile(t, incr)
	off := 0
	for i := 0; i < 50; i++ {
		off += bytes.Index(b[off+1:], []byte("\r\n*")) + 3
	}
	b[off] = 'X'
	must(t, os.WriteFile(incr, b, 0o644))
	dst := redistest.Start(t)
	code, out, errs := importAOF(t, dir, dst.URL(), "")
	want := fmt.Sprintf("ferry: error: aof: %s at offset %d: expected '*' (a command), found 'X'", incr, off)
	if code != exitFailure || lastLine(errs) != want {
		t.Fatalf("exit %d, want %d and last line %q\nstdout:\n%s\nstderr:\n%s", code, exitFailure, want, out, errs)
	}

	// A cut-off RDB base is damage too (Redis refuses it as well).
	src2 := aofSource(t, "yes", []int{0}, false)
	dir = copyAOFDir(t, src2)
	base, _ := aofFiles(t, dir)
	b = readFile(t, base)
	must(t, os.WriteFile(base, b[:len(b)/2], 0o644))
	code, out, errs = importAOF(t, dir, redistest.Start(t).URL(), "")
	if code != exitFailure || !strings.HasPrefix(lastLine(errs), "ferry: error: aof: "+base+": snapshot: rdb: offset ") {
		t.Fatalf("cut base: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestImportAOFCluster: an AOF (db 0) into a 3-master cluster target.
func TestImportAOFCluster(t *testing.T) {
	src := aofSource(t, "yes", []int{0}, true)
	dir := copyAOFDir(t, src)
	cl := redistest.StartCluster(t, 3, 0)
	code, out, errs := importAOF(t, dir, "redis://"+cl.Addrs()[0], "")
	if code != exitOK || aofSummaryRE.FindString(out) == "" {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	redistest.AssertSameData(t, []string{src.Addr}, cl.Addrs(), false, true)
}

// TestImportAOFRerunAfterStop: an import killed (SIGKILL) while it applies
// the AOF's commands leaves its marker; the rerun starts over (base again, the keys
// the base does not hold swept), so the non-idempotent commands (INCR,
// RPUSH…) end up applied once: the target equals the server.
func TestImportAOFRerunAfterStop(t *testing.T) {
	src := aofSource(t, "yes", []int{0, 1}, false)
	dir := copyAOFDir(t, src)
	dst := redistest.Start(t)
	p := startFerry(t, "sync", "--aof", dir, "--target", dst.URL(), "-c", jobFile(t, "max_ops_per_second = 300"))
	redistest.WaitFor(t, time.Minute, func() bool {
		return dst.Do(t, "EXISTS", "{t}counter:0").(int64) == 1
	}, "the import's commands reach the target")
	must(t, p.cmd.Process.Kill())
	p.wait(t, time.Minute)
	if !markerExists(t, dst, "default") {
		t.Fatal("the killed import left no marker")
	}
	if n := dst.Do(t, "GET", "{t}counter:0"); n == "29" {
		t.Fatal("the killed import had applied everything already")
	}
	// The killed process's lease has not run out: the rerun takes it over.
	code, out, errs := importAOF(t, dir, dst.URL(), "takeover = true")
	if code != exitOK {
		t.Fatalf("rerun: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	assertImported(t, src, dst, "default", "")
}

// TestImportEmptyCollections: an RDB holding empty collections of every
// encoding (rdb/testdata/empty-collections.rdb, built by the rdb tests)
// imports like redis-server loads it: the target equals a server started
// on the same file, exit 0, and the summary counts the skipped keys.
func TestImportEmptyCollections(t *testing.T) {
	b := readFile(t, filepath.Join("..", "..", "rdb", "testdata", "empty-collections.rdb"))
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "empty.rdb"), b, 0o644))
	path := filepath.Join(dir, "empty.rdb")
	loaded := redistest.Start(t, "--dbfilename", "empty.rdb")
	loaded.Stop(t)
	must(t, os.WriteFile(filepath.Join(loaded.Dir, "empty.rdb"), b, 0o644))
	loaded.Restart(t)
	if n := keyCount(t, loaded); n == 0 {
		t.Fatal("redis-server loaded no key")
	}
	dst := redistest.Start(t)
	code, out, errs := ferryRunWithin(t, time.Minute, "sync", "--rdb", path, "--target", dst.URL(), "-c", jobFile(t, ""))
	checkClean(t, out, errs)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if !strings.Contains(out, "; 28 empty collections skipped, as redis-server skips them\n") {
		t.Errorf("summary %q does not count 28 empty collections", out)
	}
	assertImported(t, loaded, dst, "default", "")
}

// TestMeasureAOFImport (FERRY_MEASURE_AOF=1; not a timed test: it asserts
// equality and logs both durations) imports an AOF of 100k keys (RDB base)
// plus 400k commands, and has redis-server load the same directory at start
// (its own "DB loaded from append only file" time) as the anchor.
func TestMeasureAOFImport(t *testing.T) {
	if os.Getenv("FERRY_MEASURE_AOF") == "" {
		t.Skip("set FERRY_MEASURE_AOF=1 to measure")
	}
	for _, preamble := range []string{"yes", "no"} {
		src := redistest.Start(t, "--appendonly", "yes", "--aof-use-rdb-preamble", preamble)
		c := src.Client(t)
		redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: 100000, Seed: 3})
		src.Do(t, "BGREWRITEAOF")
		redistest.WaitFor(t, time.Minute, func() bool {
			p := src.Info(t, "persistence")
			return p["aof_rewrite_in_progress"] == "0" && p["aof_rewrite_scheduled"] == "0"
		}, "AOF rewrite")
		ctx := context.Background()
		for b := 0; b < 400; b++ {
			p := c.Pipeline()
			for i := 0; i < 250; i++ {
				n := b*250 + i
				p.Set(ctx, fmt.Sprintf("m:s:%d", n), n, 0)
				p.Incr(ctx, fmt.Sprintf("m:c:%d", n%1000))
				p.RPush(ctx, fmt.Sprintf("m:l:%d", n%500), n)
				p.HSet(ctx, fmt.Sprintf("m:h:%d", n%700), n, n)
			}
			_, err := p.Exec(ctx)
			must(t, err)
		}
		src.Do(t, "CONFIG", "SET", "appendfsync", "always")
		src.Do(t, "SET", "m:last", "1") // flushed with the rest
		dir := copyAOFDir(t, src)

		dst := redistest.Start(t)
		start := time.Now()
		code, out, errs := importAOF(t, dir, dst.URL(), "")
		took := time.Since(start)
		if code != exitOK {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		assertImported(t, src, dst, "default", "")

		loader := redistest.Start(t)
		loader.Stop(t)
		must(t, os.Rename(dir, filepath.Join(loader.Dir, "appendonlydir")))
		loader.Restart(t, "--appendonly", "yes", "--aof-use-rdb-preamble", preamble)
		m := regexp.MustCompile(`DB loaded from append only file: ([0-9.]+) seconds`).FindStringSubmatch(loader.Log())
		if m == nil {
			t.Fatalf("no load time in the log:\n%s", loader.Log())
		}
		redistest.AssertSameData(t, []string{src.Addr}, []string{loader.Addr}, false, false)
		t.Logf("preamble %s: ferry import %.2f s (%s); redis-server loading the same AOF: %s s", preamble, took.Seconds(), strings.TrimSpace(out), m[1])
	}
}

// TestImportAOFOverwrite: with target_nonempty = "overwrite" the AOF is
// applied over a target holding other keys: they stay, and every key of the
// AOF ends as the server holds it.
func TestImportAOFOverwrite(t *testing.T) {
	src := aofSource(t, "no", []int{0}, false)
	dir := copyAOFDir(t, src)
	dst := redistest.Start(t)
	dst.Do(t, "SET", "foreign", "stays")
	code, out, errs := importAOF(t, dir, dst.URL(), `target_nonempty = "overwrite"`)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if v := dst.Do(t, "GET", "foreign"); v != "stays" {
		t.Fatalf("foreign key: %v", v)
	}
	dst.Do(t, "DEL", "foreign")
	assertImported(t, src, dst, "default", "")
}
