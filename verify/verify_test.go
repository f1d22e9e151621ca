package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/redistest"
)

func endpoint(t *testing.T, addr string) conf.Endpoint {
	t.Helper()
	e, err := conf.ParseAddr("redis://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	e.DialTimeout = 5 * time.Second
	return e
}

// dbClient is a client of one db of a standalone server.
func dbClient(t *testing.T, s *redistest.Server, db int) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, DB: db, Protocol: 2, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	return c
}

// copyKeys copies every key of src to dst with DUMP/RESTORE ABSTTL.
func copyKeys(t *testing.T, src *redis.Client, dst redis.UniversalClient) int {
	t.Helper()
	ctx := context.Background()
	n := 0
	iter := src.Scan(ctx, 0, "", 1000).Iterator()
	var keys []string
	flush := func() {
		if len(keys) == 0 {
			return
		}
		p := src.Pipeline()
		dumps := make([]*redis.StringCmd, len(keys))
		exps := make([]*redis.Cmd, len(keys))
		for i, k := range keys {
			dumps[i] = p.Dump(ctx, k)
			exps[i] = p.Do(ctx, "PEXPIRETIME", k)
		}
		if _, err := p.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		q := dst.Pipeline()
		for i, k := range keys {
			exp, _ := exps[i].Int64()
			q.Do(ctx, "RESTORE", k, max(exp, 0), dumps[i].Val(), "ABSTTL", "REPLACE")
		}
		if _, err := q.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		n += len(keys)
		keys = keys[:0]
	}
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 500 {
			flush()
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	flush()
	return n
}

func run(t *testing.T, o Options) Result {
	t.Helper()
	if o.Rounds == 0 {
		o.Rounds = 1
	}
	r, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustDo(t *testing.T, c redis.UniversalClient, args ...any) {
	t.Helper()
	if err := c.Do(context.Background(), args...).Err(); err != nil && err != redis.Nil {
		t.Fatalf("%v: %v", args, err)
	}
}

func diffLines(r Result) string {
	var b strings.Builder
	for _, d := range r.Diffs {
		b.WriteString("\n  " + d.String())
	}
	return b.String()
}

func TestEqualAfterCopy(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	dbs := []int{0, 1, 5}
	st := redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 300, DBs: dbs, Big: true, Seed: 3, TTLPct: 20})
	for _, db := range dbs {
		copyKeys(t, dbClient(t, src, db), dbClient(t, dst, db))
	}
	// ferry's own keys are ignored on both sides
	mustDo(t, dst.Client(t), "SET", "__ferry:fence:pos:2", "1")
	mustDo(t, dbClient(t, src, 1), "SET", "__ferry:job:probe", "1")

	var logBuf syncBuffer
	t0 := time.Now()
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), MaxDiffs: 10,
		Progress: 20 * time.Millisecond, Log: newTestLogger(&logBuf)})
	t.Logf("full verify of %d keys in %v", r.Compared, time.Since(t0))
	if !r.Equal() {
		t.Fatalf("copy reported different:%s", diffLines(r))
	}
	if r.Compared != int64(st.Keys) || r.TargetKeys != int64(st.Keys) {
		t.Fatalf("compared %d, target keys %d, filled %d", r.Compared, r.TargetKeys, st.Keys)
	}
	if len(r.PerDB) != 3 {
		t.Fatalf("per db: %+v", r.PerDB)
	}
	for _, db := range r.PerDB {
		want := 0
		for _, n := range st.PerDB[db.DB] {
			want += n
		}
		if db.Compared != int64(want) || db.TargetDB != db.DB {
			t.Errorf("db%d: compared %d, want %d", db.DB, db.Compared, want)
		}
	}
	var out bytes.Buffer
	if err := r.WriteSummary(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), "source and target are equal\n") || !strings.Contains(out.String(), "db5 → target db5") {
		t.Fatalf("summary:\n%s", out.String())
	}
	if !strings.Contains(logBuf.String(), "verify: progress") {
		t.Errorf("no progress line in the log:\n%s", logBuf.String())
	}

	// the throttle holds the rate of commands
	t0 = time.Now()
	r = run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Mode: ModeKeys, MaxOps: 2000})
	el := time.Since(t0)
	if !r.Equal() {
		t.Fatalf("keys mode:%s", diffLines(r))
	}
	// keys mode: per key about 2 commands on each side, plus SCAN and EXISTS
	if min := time.Duration(float64(2*r.Compared)/2000*float64(time.Second)) * 8 / 10; el < min {
		t.Fatalf("throttled run took %v, want at least %v", el, min)
	}
	t.Logf("keys mode at 2000 ops/s: %d keys in %v", r.Compared, el)
}

// expect is a planted difference.
type expect struct {
	kind   Kind
	detail string // substring of the detail
}

// plant changes the target so that each kind of difference appears; keys
// pre+... come from FillAllTypes (db 0), t:* were added to src by
// addStreams before the copy.
func plant(t *testing.T, dst redis.UniversalClient, pre string) map[string]expect {
	do := func(args ...any) { t.Helper(); mustDo(t, dst, args...) }
	do("HSET", pre+"hash:small", "name", "boat")
	do("HSET", pre+"big:hash", "field:4000", "changed")
	do("LSET", pre+"list:small", 2, "X")
	do("LSET", pre+"big:list", 4321, "X")
	do("ZADD", pre+"zset:small", 99, "tenth")
	do("ZADD", pre+"big:zset", 12345, "member:4999")
	do("SET", pre+"str:embstr", "hellp")
	do("SETRANGE", pre+"str:100k", 70000, "#")
	do("SREM", pre+"set:small", "apple")
	do("SADD", pre+"set:small", "apricot")
	do("SREM", pre+"big:set", "member:10")
	do("SADD", pre+"big:set", "member:x")
	do("EXPIRE", pre+"str:ttl-s", 100)
	do("PERSIST", pre+"list:ttl")
	do("EXPIRE", pre+"str:raw", 1000)
	do("XGROUP", "DESTROY", pre+"stream:basic", "g2")
	do("XGROUP", "SETID", pre+"big:stream", "big", "1700000002000-10")
	do("XACK", "t:pel-ack", "g", "1-1")
	do("XCLAIM", "t:pel-owner", "g", "bob", 0, "1-1")
	do("XCLAIM", "t:pel-owner", "g", "alice", 0, "1-3")
	do("DEL", "t:entry")
	do("XADD", "t:entry", "1-1", "a", "1")
	do("XADD", "t:entry", "1-2", "a", "3")
	do("DEL", pre+"hash:longvalue")
	do("SET", pre+"hash:longvalue", "now a string")
	do("DEL", pre+"zset:longmember")
	do("SET", "t:extra", "x")
	do("SET", "__ferry:marker:pos", "1")
	return map[string]expect{
		pre + "hash:small":      {KindValue, `field "name": "ferry" != "boat"`},
		pre + "big:hash":        {KindValue, `field "field:4000": `},
		pre + "list:small":      {KindValue, `element 2: "b" != "X"`},
		pre + "big:list":        {KindValue, `element 4321: `},
		pre + "zset:small":      {KindValue, `member "tenth": score 0.1 != 99`},
		pre + "big:zset":        {KindValue, `member "member:4999": score `},
		pre + "str:embstr":      {KindValue, `"hello" != "hellp"`},
		pre + "str:100k":        {KindValue, `differs at byte 70000 of 102400`},
		pre + "set:small":       {KindValue, `member "apple" missing on target`},
		pre + "big:set":         {KindValue, `member "member:10" missing on target`},
		pre + "str:ttl-s":       {KindTTL, `TTL 7`},
		pre + "list:ttl":        {KindTTL, `source has a TTL of `},
		pre + "str:raw":         {KindTTL, `target has a TTL of `},
		pre + "stream:basic":    {KindValue, `group "g2" missing on target`},
		pre + "big:stream":      {KindValue, `group "big": last-delivered-id 1700000002000-1501 != 1700000002000-10`},
		"t:pel-ack":             {KindValue, `group "g": consumer "alice" has 2 pending != 1`},
		"t:pel-owner":           {KindValue, `group "g": pending entry 1-1 owned by "alice" != "bob"`},
		"t:entry":               {KindValue, `entry 1-2: "a" "2" != "a" "3"`},
		pre + "hash:longvalue":  {KindType, `source has a hash, target a string`},
		pre + "zset:longmember": {KindMissing, `not on target (source has a zset)`},
		"t:extra":               {KindExtra, `not on source (target has a string)`},
	}
}

// addStreams adds the streams whose groups plant changes.
func addStreams(t *testing.T, c redis.UniversalClient) {
	do := func(args ...any) { t.Helper(); mustDo(t, c, args...) }
	for _, k := range []string{"t:pel-ack", "t:pel-owner"} {
		for i := 1; i <= 4; i++ {
			do("XADD", k, fmt.Sprintf("1-%d", i), "n", i)
		}
		do("XGROUP", "CREATE", k, "g", "0")
		do("XREADGROUP", "GROUP", "g", "alice", "COUNT", 2, "STREAMS", k, ">")
		do("XREADGROUP", "GROUP", "g", "bob", "COUNT", 2, "STREAMS", k, ">")
	}
	do("XADD", "t:entry", "1-1", "a", "1")
	do("XADD", "t:entry", "1-2", "a", "2")
}

func checkPlanted(t *testing.T, r Result, want map[string]expect, db, tdb int) {
	t.Helper()
	got := map[string]Diff{}
	for _, d := range r.Diffs {
		got[d.Key] = d
	}
	for k, w := range want {
		d, ok := got[k]
		switch {
		case !ok:
			t.Errorf("%s: not reported (want %s %q)", k, w.kind, w.detail)
		case d.Kind != w.kind || !strings.Contains(d.Detail, w.detail) || d.DB != db || d.TargetDB != tdb:
			t.Errorf("%s: got %s, want db%d→db%d %s: …%s…", k, d, db, tdb, w.kind, w.detail)
		}
	}
	for k, d := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected difference %s", d)
		}
	}
	counts := map[Kind]int64{}
	for _, w := range want {
		counts[w.kind]++
	}
	for _, k := range Kinds {
		if r.Counts[k] != counts[k] {
			t.Errorf("count %s = %d, want %d", k, r.Counts[k], counts[k])
		}
	}
}

func TestEachDifference(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	st := redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Big: true, Seed: 5, TTLPct: 20})
	addStreams(t, sc)
	copyKeys(t, sc, dst.Client(t))
	want := plant(t, dst.Client(t), "fill:db0:")

	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Rounds: 2, RoundDelay: 10 * time.Millisecond})
	checkPlanted(t, r, want, 0, 0)
	if r.Rounds != 2 || r.Healed != 0 || r.Compared != int64(st.Keys+3) {
		t.Errorf("rounds %d healed %d compared %d (filled %d+3)", r.Rounds, r.Healed, r.Compared, st.Keys)
	}
	var out bytes.Buffer
	r.WriteSummary(&out)
	s := out.String()
	if !strings.Contains(s, "differences: 21 (missing 1, extra 1, type 1, value 15, ttl 3)") ||
		!strings.HasSuffix(s, "source and target differ\n") || !strings.Contains(s, "… and 1 more (see --report)") {
		t.Errorf("summary:\n%s", s)
	}
	t.Logf("summary:\n%s", s)

	// the JSON report lists each difference
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Equal  bool             `json:"equal"`
		Counts map[string]int64 `json:"counts"`
		PerDB  []struct {
			DB          int              `json:"db"`
			Compared    int64            `json:"compared"`
			Differences map[string]int64 `json:"differences"`
		} `json:"per_db"`
		Diffs []struct {
			DB     int    `json:"db"`
			Key    string `json:"key"`
			Kind   string `json:"kind"`
			Detail string `json:"detail"`
		} `json:"diffs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if rep.Equal || len(rep.Diffs) != len(want) || rep.Counts["value"] != 15 || len(rep.PerDB) != 1 || rep.PerDB[0].Differences["ttl"] != 3 {
		t.Fatalf("report:\n%s", buf.String())
	}
	for _, d := range rep.Diffs {
		if w := want[d.Key]; string(w.kind) != d.Kind || !strings.Contains(d.Detail, w.detail) || d.DB != 0 {
			t.Errorf("report entry %+v, want %+v", d, w)
		}
	}
}

func TestClusterTarget(t *testing.T) {
	t.Parallel()
	src := redistest.Start(t)
	cl := redistest.StartCluster(t, 3, 0)
	cc := cl.Client(t)
	sc := src.Client(t)
	st := redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Big: true, Seed: 9, TTLPct: 20})
	addStreams(t, sc)
	copyKeys(t, sc, cc)
	s, c := endpoint(t, src.Addr), endpoint(t, cl.Masters[1].Addr)

	// equal both ways
	r := run(t, Options{Source: s, Target: c})
	if !r.Equal() || r.Compared != int64(st.Keys+3) || r.TargetKeys != r.Compared {
		t.Fatalf("standalone→cluster: compared %d, target %d:%s", r.Compared, r.TargetKeys, diffLines(r))
	}
	r = run(t, Options{Source: c, Target: s})
	if !r.Equal() || r.Compared != int64(st.Keys+3) || r.TargetKeys != r.Compared {
		t.Fatalf("cluster→standalone: compared %d, target %d:%s", r.Compared, r.TargetKeys, diffLines(r))
	}

	want := plant(t, cc, "fill:db0:")
	r = run(t, Options{Source: s, Target: c})
	checkPlanted(t, r, want, 0, 0)

	// the other way round, what was missing is extra
	r = run(t, Options{Source: c, Target: s, Mode: ModeKeys})
	got := map[string]Diff{}
	for _, d := range r.Diffs {
		got[d.Key] = d
	}
	if d := got["t:extra"]; d.Kind != KindMissing {
		t.Errorf("cluster→standalone t:extra: %v", d)
	}
	if d := got["fill:db0:zset:longmember"]; d.Kind != KindExtra {
		t.Errorf("cluster→standalone zset:longmember: %v", d)
	}

	// a source db other than 0 cannot go to a cluster
	mustDo(t, dbClient(t, src, 2), "SET", "k", "v")
	if _, err := Run(context.Background(), Options{Source: s, Target: c}); err == nil || !strings.Contains(err.Error(), "source db 2 maps to target db 2, but the target is a cluster") {
		t.Fatalf("db 2 to a cluster: %v", err)
	}
	if r := run(t, Options{Source: s, Target: c, DBMap: map[int]int{2: 0}, Mode: ModeKeys}); r.Counts[KindMissing] != 2 {
		// k from db 2, zset:longmember from db 0
		t.Fatalf("db_map 2→0: %v%s", r.Counts, diffLines(r))
	}
}

func TestHealDuringRounds(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := src.Client(t), dst.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 1})
	copyKeys(t, sc, dc)
	mustDo(t, dc, "HSET", "fill:db0:hash:small", "name", "late")   // heals
	mustDo(t, dc, "DEL", "fill:db0:list:small")                    // heals
	mustDo(t, dc, "SET", "late:extra", "x")                        // heals
	mustDo(t, dc, "HSET", "fill:db0:hash:longvalue", "g", "stays") // stays

	var rounds []string
	var wg sync.WaitGroup
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Rounds: 3, RoundDelay: 50 * time.Millisecond,
		OnRound: func(round, differing int) {
			rounds = append(rounds, fmt.Sprintf("%d:%d", round, differing))
			if round == 1 {
				// the sync catches up while verify waits for its next round
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					dc.HSet(ctx, "fill:db0:hash:small", "name", "ferry")
					dump := sc.Dump(ctx, "fill:db0:list:small").Val()
					dc.RestoreReplace(ctx, "fill:db0:list:small", 0, dump)
					dc.Del(ctx, "late:extra")
				}()
				wg.Wait()
			}
		}})
	if got := strings.Join(rounds, " "); got != "1:4 2:1 3:1" {
		t.Errorf("rounds: %s", got)
	}
	if len(r.Diffs) != 1 || r.Diffs[0].Key != "fill:db0:hash:longvalue" || r.Diffs[0].Detail != `field "g": "1" != "stays"` || r.Healed != 3 || r.Rounds != 3 {
		t.Fatalf("healed %d rounds %d:%s", r.Healed, r.Rounds, diffLines(r))
	}
	var out bytes.Buffer
	r.WriteSummary(&out)
	if !strings.Contains(out.String(), "3 differences went away during the re-check rounds") {
		t.Errorf("summary:\n%s", out.String())
	}

	// with nothing left to re-check, no more rounds are run
	mustDo(t, dc, "HSET", "fill:db0:hash:longvalue", "g", "1")
	t0 := time.Now()
	r = run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Rounds: 3, RoundDelay: time.Second})
	if !r.Equal() || r.Rounds != 1 || time.Since(t0) > time.Second {
		t.Fatalf("equal run: rounds %d in %v:%s", r.Rounds, time.Since(t0), diffLines(r))
	}
}

func TestDBMap(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 150, DBs: []int{1}, Seed: 2, TTLPct: 10})
	n := copyKeys(t, dbClient(t, src, 1), dbClient(t, dst, 0))
	s, d := endpoint(t, src.Addr), endpoint(t, dst.Addr)

	r := run(t, Options{Source: s, Target: d, DBMap: map[int]int{1: 0}})
	if !r.Equal() || r.Compared != int64(n) || r.TargetKeys != int64(n) || len(r.PerDB) != 1 || r.PerDB[0].DB != 1 || r.PerDB[0].TargetDB != 0 {
		t.Fatalf("db_map 1→0: %+v:%s", r.PerDB, diffLines(r))
	}
	// without the map every key is missing from db 1 and extra in db 0
	r = run(t, Options{Source: s, Target: d, Mode: ModeKeys})
	if r.Counts[KindMissing] != int64(n) || r.Counts[KindExtra] != int64(n) {
		t.Fatalf("no db_map: %v", r.Counts)
	}

	t0 := dbClient(t, dst, 0)
	mustDo(t, t0, "DEL", "fill:db1:str:int")
	mustDo(t, t0, "SET", "only-on-target", "1")
	mustDo(t, t0, "SET", "fill:db1:str:embstr", "changed")
	r = run(t, Options{Source: s, Target: d, DBMap: map[int]int{1: 0}})
	want := map[string]Kind{"fill:db1:str:int": KindMissing, "only-on-target": KindExtra, "fill:db1:str:embstr": KindValue}
	if len(r.Diffs) != len(want) {
		t.Fatalf("db_map diffs:%s", diffLines(r))
	}
	for _, x := range r.Diffs {
		if want[x.Key] != x.Kind || x.DB != 1 || x.TargetDB != 0 {
			t.Errorf("got %s", x)
		}
	}
	if !strings.Contains(r.Diffs[0].String(), "db1→db0 ") {
		t.Errorf("diff line %q", r.Diffs[0].String())
	}

	// two source dbs into one target db; a target db no source db maps to
	mustDo(t, t0, "SET", "fill:db1:str:int", "12345")
	mustDo(t, t0, "DEL", "only-on-target")
	mustDo(t, t0, "SET", "fill:db1:str:embstr", "hello")
	mustDo(t, dbClient(t, src, 2), "SET", "from-db2", "2")
	mustDo(t, t0, "SET", "from-db2", "2")
	mustDo(t, dbClient(t, dst, 1), "SET", "stray", "1")
	r = run(t, Options{Source: s, Target: d, DBMap: map[int]int{1: 0, 2: 0}})
	if len(r.Diffs) != 1 || r.Diffs[0].Key != "stray" || r.Diffs[0].Kind != KindExtra || r.Diffs[0].DB != 1 || r.Diffs[0].TargetDB != 1 {
		t.Fatalf("1,2→0:%s", diffLines(r))
	}
	var lines []string
	for _, p := range r.PerDB {
		lines = append(lines, fmt.Sprintf("%d→%d:%d/%d/%d", p.DB, p.TargetDB, p.Compared, p.TargetKeys, p.Diffs[KindExtra]))
	}
	// the target keys of db 0, which two source dbs map to, count under db 0
	if got, want := strings.Join(lines, " "), fmt.Sprintf("0→0:0/%d/0 1→0:%d/0/0 1→1:0/1/1 2→0:1/0/0", n+1, n); got != want {
		t.Errorf("per db: %s, want %s", got, want)
	}
}

func TestModeKeys(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := src.Client(t), dst.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 100, Seed: 4, TTLPct: 30})
	copyKeys(t, sc, dc)
	mustDo(t, dc, "HSET", "fill:db0:hash:small", "name", "same-length") // value only: not seen
	mustDo(t, dc, "EXPIRE", "fill:db0:str:ttl-s", 5)                    // TTL: not seen
	mustDo(t, dc, "HSET", "fill:db0:hash:longvalue", "new", "field")    // length
	mustDo(t, dc, "APPEND", "fill:db0:str:raw", "!")                    // length
	mustDo(t, dc, "RPUSH", "fill:db0:list:ints", "1")                   // length
	mustDo(t, dc, "XADD", "fill:db0:stream:basic", "*", "a", "b")       // length
	mustDo(t, dc, "DEL", "fill:db0:set:small")                          // missing
	mustDo(t, dc, "SET", "fill:db0:zset:small", "x")                    // type
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Mode: ModeKeys})
	want := map[string]string{
		"fill:db0:hash:longvalue": "value: 2 != 3 fields",
		"fill:db0:str:raw":        "value: length 100 != 101 bytes",
		"fill:db0:list:ints":      "value: length 9 != 10 elements",
		"fill:db0:stream:basic":   "value: length 57 != 58 entries",
		"fill:db0:set:small":      "missing: not on target (source has a set)",
		"fill:db0:zset:small":     "type: source has a zset, target a string",
	}
	if len(r.Diffs) != len(want) {
		t.Fatalf("keys mode:%s", diffLines(r))
	}
	for _, d := range r.Diffs {
		if got := string(d.Kind) + ": " + d.Detail; got != want[d.Key] {
			t.Errorf("%s: %s, want %s", d.Key, got, want[d.Key])
		}
	}
}

func TestModeSample(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc, dc := src.Client(t), dst.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 2000, Seed: 6})
	for i := 0; i < 10; i++ {
		mustDo(t, dbClient(t, src, 3), "SET", fmt.Sprint("small:", i), i)
	}
	copyKeys(t, sc, dc)
	copyKeys(t, dbClient(t, src, 3), dbClient(t, dst, 3))
	mustDo(t, dbClient(t, dst, 3), "DEL", "small:7")
	mustDo(t, dbClient(t, dst, 3), "SET", "small:extra", "1")

	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Mode: ModeSample, Sample: 50})
	var db0, db3 DBResult
	for _, d := range r.PerDB {
		switch d.DB {
		case 0:
			db0 = d
		case 3:
			db3 = d
		}
	}
	// db 0 is sampled; db 3 is smaller than the sample and compared whole
	if db0.Compared < 25 || db0.Compared > 50 || db0.TargetKeys < 25 || db0.TargetKeys > 50 {
		t.Errorf("db0 sampled: %+v", db0)
	}
	if db3.Compared != 10 || db3.TargetKeys != 10 {
		t.Errorf("db3 whole: %+v", db3)
	}
	if len(r.Diffs) != 2 || r.Diffs[0].Key != "small:7" || r.Diffs[0].Kind != KindMissing || r.Diffs[1].Key != "small:extra" || r.Diffs[1].Kind != KindExtra {
		t.Fatalf("sample:%s", diffLines(r))
	}
	// a changed key in the big db is found when the sample holds it: with
	// every key changed, any sample finds them
	p := dc.Pipeline()
	iter := sc.Scan(context.Background(), 0, "fill:db0:r:string:*", 1000).Iterator()
	changedKeys := 0
	for iter.Next(context.Background()) {
		p.Append(context.Background(), iter.Val(), "!")
		changedKeys++
	}
	if _, err := p.Exec(context.Background()); err != nil {
		t.Fatal(err)
	}
	r = run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), Mode: ModeSample, Sample: 200})
	if r.Counts[KindValue] == 0 || r.Counts[KindValue] > int64(changedKeys) {
		t.Fatalf("sample of %d changed keys: %v", changedKeys, r.Counts)
	}
}

func TestBinaryKeyAndMaxDiffs(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	bin := "bin\xff\x00key"
	mustDo(t, sc, "SET", bin, "v")
	for i := 0; i < 30; i++ {
		mustDo(t, sc, "SET", fmt.Sprint("k", i), i)
	}
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), MaxDiffs: 10, Rounds: 2, RoundDelay: -1})
	if len(r.Diffs) != 10 || r.Unlisted != 21 || r.Total() != 31 || r.Counts[KindMissing] != 31 || r.Equal() {
		t.Fatalf("max diffs: listed %d unlisted %d counts %v", len(r.Diffs), r.Unlisted, r.Counts)
	}
	r = run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr)})
	var buf bytes.Buffer
	r.WriteJSON(&buf)
	var rep struct {
		Diffs []struct {
			Key       string `json:"key"`
			KeyBase64 string `json:"key_base64"`
		} `json:"diffs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, d := range rep.Diffs {
		if d.KeyBase64 == "Ymlu/wBrZXk=" {
			found = true
		} else if d.KeyBase64 != "" {
			t.Errorf("base64 for %q", d.Key)
		}
	}
	if !found {
		t.Fatalf("binary key not in the report:\n%s", buf.String())
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	src := redistest.Start(t)
	port := redistest.FreePort(t)
	_, err := Run(context.Background(), Options{Source: endpoint(t, src.Addr), Target: endpoint(t, fmt.Sprintf("127.0.0.1:%d", port))})
	if err == nil || !strings.Contains(err.Error(), "target: connect") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("unreachable target: %v", err)
	}
	_, err = Run(context.Background(), Options{Source: endpoint(t, src.Addr), Target: endpoint(t, src.Addr), Mode: "bogus"})
	if err == nil || !strings.Contains(err.Error(), `unknown mode "bogus"`) {
		t.Fatalf("bad mode: %v", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newTestLogger(w io.Writer) zerolog.Logger { return zerolog.New(w) }

// A throttled run reads the source and the target TTLs of a key at times
// far apart: the expiry instants are compared, not the remaining TTLs.
func TestThrottledTTL(t *testing.T) {
	t.Parallel()
	src, dst := redistest.Start(t), redistest.Start(t)
	sc := src.Client(t)
	for i := 0; i < 5; i++ {
		mustDo(t, sc, "SET", fmt.Sprint("ttl:", i), "v", "EX", 3600)
	}
	copyKeys(t, sc, dst.Client(t))
	t0 := time.Now()
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, dst.Addr), MaxOps: 20, TTLTolerance: 300 * time.Millisecond})
	if !r.Equal() || r.Compared != 5 {
		t.Fatalf("throttled: %d compared:%s", r.Compared, diffLines(r))
	}
	if el := time.Since(t0); el < time.Second {
		t.Fatalf("not throttled: %v", el)
	}
}

// TestFieldTTLs: per-field hash TTLs (Redis 7.4+) are compared where both
// sides hold them, and reported as their own kind where the target cannot.
// Needs FERRY_REDIS_SERVER_NEW (a 7.4+ redis-server); CI has none and skips.
func TestFieldTTLs(t *testing.T) {
	src, newDst := redistest.StartNewer(t), redistest.StartNewer(t)
	oldDst := redistest.Start(t)
	sc := src.Client(t)
	big := []any{"HSET", "big"}
	for i := range 300 {
		big = append(big, fmt.Sprintf("f%d", i), "v")
	}
	setup := func(c redis.UniversalClient, ttl map[string]int64) {
		mustDo(t, c, "HSET", "same", "a", "1", "b", "2")
		mustDo(t, c, "HSET", "moved", "a", "1", "b", "2")
		mustDo(t, c, "HSET", "gone", "a", "1")
		mustDo(t, c, big...)
		mustDo(t, c, "HSET", "plain", "x", "1")
		for k, at := range ttl {
			if at > 0 {
				f := map[string]string{"same": "a", "moved": "b", "gone": "a", "big": "f250"}[k]
				mustDo(t, c, "HPEXPIREAT", k, at, "FIELDS", 1, f)
			}
		}
	}
	const at = 4102444800000 // 2100: the fixture does not age
	setup(sc, map[string]int64{"same": at, "moved": at, "gone": at, "big": at})

	// Both hold field TTLs: moved differs by an hour, gone lost its, big
	// (a hashtable read in pages) differs on a late field.
	setup(newDst.Client(t), map[string]int64{"same": at, "moved": at + 3600_000, "big": at + 7200_000})
	r := run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, newDst.Addr)})
	want := map[string]string{
		"moved": `field "b": TTL until 2100-01-01T00:00:00Z on source, 2100-01-01T01:00:00Z on target`,
		"gone":  `field "a": source has a TTL until 2100-01-01T00:00:00Z, target has none`,
		"big":   `field "f250": TTL until`,
	}
	if len(r.Diffs) != len(want) {
		t.Fatalf("7.4+ target: %d differences, want %d:%s", len(r.Diffs), len(want), diffLines(r))
	}
	for _, d := range r.Diffs {
		if d.Kind != KindTTL || !strings.Contains(d.Detail, want[d.Key]) {
			t.Errorf("7.4+ target: %s: %s %q, want ttl %q", d.Key, d.Kind, d.Detail, want[d.Key])
		}
	}

	// A 7.0 target cannot hold them: every hash with one is a lost field TTL.
	setup(oldDst.Client(t), nil)
	r = run(t, Options{Source: endpoint(t, src.Addr), Target: endpoint(t, oldDst.Addr)})
	if r.Counts[KindLostFieldTTL] != 4 || len(r.Diffs) != 4 {
		t.Fatalf("7.0 target: %v:%s", r.Counts, diffLines(r))
	}
	var out bytes.Buffer
	r.WriteSummary(&out)
	if !strings.Contains(out.String(), "lost_field_ttl 4") {
		t.Errorf("summary does not count the lost field TTLs:\n%s", out.String())
	}
	for _, d := range r.Diffs {
		if !strings.Contains(d.Detail, "that the target cannot hold") {
			t.Errorf("7.0 target: %s: %q", d.Key, d.Detail)
		}
	}
}
