package rdb

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// applyRewrite frames data and applies Rewrite's commands to dst.
func applyRewrite(t *testing.T, data []byte, dst *testServer, opt Options, ropt RewriteOptions) map[string]int {
	t.Helper()
	ctx := context.Background()
	clients := map[int]*redis.Client{}
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	cmds := map[string]int{}
	frameAll(t, data, opt, func(rec *Record) {
		defer rec.Release()
		c := clients[rec.DB]
		if c == nil {
			c = dst.client(rec.DB)
			clients[rec.DB] = c
		}
		err := Rewrite(rec, ropt, func(args [][]byte) error {
			cmds[strings.ToUpper(string(args[0]))]++
			if err := c.Do(ctx, argsToAny(args)...).Err(); err != nil && err != redis.Nil {
				return fmt.Errorf("%s: %w", fmtArgs(args), err)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Rewrite key %q: %v", rec.Key, err)
		}
	})
	return cmds
}

func TestRewriteToServer(t *testing.T) {
	src := startRedis(t, "--enable-debug-command", "local")
	keys := fillServer(t, src)
	data := src.save(t)
	dst := startRedis(t)

	for _, tc := range []struct {
		name string
		opt  Options
		ropt RewriteOptions
	}{
		{"default", Options{}, RewriteOptions{}},
		{"tiny-batches-spilled", Options{MemLimit: 512, SpillDir: t.TempDir()}, RewriteOptions{MaxElems: 7, MaxBytes: 100}},
		{"streamed-pel-join", Options{MemLimit: 256, SpillDir: t.TempDir()}, RewriteOptions{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "streamed-pel-join" {
				defer func(v uint64) { maxPELInMem = v }(maxPELInMem)
				maxPELInMem = 1
			}
			dc := dst.client(0)
			mustDo(t, dc, "FLUSHALL")
			mustDo(t, dc, "FUNCTION", "FLUSH")
			dc.Close()
			cmds := applyRewrite(t, data, dst, tc.opt, tc.ropt)
			if tc.ropt.MaxBytes == 100 && cmds["APPEND"] == 0 {
				t.Errorf("big strings were not split into APPENDs: %v", cmds)
			}
			for db, ks := range keys {
				sc, dc := src.client(db), dst.client(db)
				got, err := dc.Keys(context.Background(), "*").Result()
				if err != nil {
					t.Fatal(err)
				}
				sort.Strings(got)
				if !reflect.DeepEqual(got, ks) {
					t.Errorf("db %d: keys %q, want %q", db, got, ks)
				}
				for _, k := range ks {
					compareKey(t, sc, dc, k)
				}
				sc.Close()
				dc.Close()
			}
			sc, dc := src.client(0), dst.client(0)
			defer sc.Close()
			defer dc.Close()
			a := mustDo(t, sc, "FUNCTION", "LIST", "WITHCODE")
			b := mustDo(t, dc, "FUNCTION", "LIST", "WITHCODE")
			if !reflect.DeepEqual(a, b) {
				t.Errorf("functions differ:\n%v\n%v", a, b)
			}
		})
	}
}

// compareKey compares the logical content of key on two servers.
func compareKey(t *testing.T, a, b *redis.Client, key string) {
	t.Helper()
	ctx := context.Background()
	ta, err := a.Type(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	tb, _ := b.Type(ctx, key).Result()
	if ta != tb {
		t.Errorf("key %q: type %s, want %s", key, tb, ta)
		return
	}
	var va, vb any
	switch ta {
	case "string":
		va, vb = a.Get(ctx, key).Val(), b.Get(ctx, key).Val()
	case "list":
		va, vb = a.LRange(ctx, key, 0, -1).Val(), b.LRange(ctx, key, 0, -1).Val()
	case "set":
		x, y := a.SMembers(ctx, key).Val(), b.SMembers(ctx, key).Val()
		sort.Strings(x)
		sort.Strings(y)
		va, vb = x, y
	case "zset":
		// raw replies: scores as Redis formats them
		va = mustDo(t, a, "ZRANGE", key, 0, -1, "WITHSCORES")
		vb = mustDo(t, b, "ZRANGE", key, 0, -1, "WITHSCORES")
	case "hash":
		va, vb = a.HGetAll(ctx, key).Val(), b.HGetAll(ctx, key).Val()
	case "stream":
		va, vb = streamState(t, a, key), streamState(t, b, key)
	default:
		t.Errorf("key %q: unexpected type %s", key, ta)
	}
	if !reflect.DeepEqual(va, vb) {
		t.Errorf("key %q (%s) differs:\n got %v\nwant %v", key, ta, vb, va)
	}
	ea, _ := a.PExpireTime(ctx, key).Result()
	eb, _ := b.PExpireTime(ctx, key).Result()
	if ea != eb {
		t.Errorf("key %q: expire time %v, want %v", key, eb, ea)
	}
}

type streamGroupState struct {
	Name, LastID       string
	EntriesRead, Lag   int64
	PelCount           int64
	Pending            []string // id/consumer/time/count
	Consumers          []string // name: pending ids
	ConsumerPendingCnt []int64
}

type streamStateT struct {
	Length                int64
	LastID, MaxDel, First string
	EntriesAdded          int64
	Entries               []redis.XMessage
	Groups                []streamGroupState
}

func streamState(t *testing.T, c *redis.Client, key string) streamStateT {
	t.Helper()
	ctx := context.Background()
	full, err := c.XInfoStreamFull(ctx, key, 0).Result()
	if err != nil {
		t.Fatalf("XINFO STREAM %q FULL: %v", key, err)
	}
	st := streamStateT{
		Length: full.Length, LastID: full.LastGeneratedID, MaxDel: full.MaxDeletedEntryID,
		First: full.RecordedFirstEntryID, EntriesAdded: full.EntriesAdded,
	}
	st.Entries, _ = c.XRange(ctx, key, "-", "+").Result()
	for _, g := range full.Groups {
		gs := streamGroupState{Name: g.Name, LastID: g.LastDeliveredID, EntriesRead: g.EntriesRead, Lag: g.Lag, PelCount: g.PelCount}
		for _, p := range g.Pending {
			gs.Pending = append(gs.Pending, fmt.Sprintf("%s/%s/%d/%d", p.ID, p.Consumer, p.DeliveryTime.UnixMilli(), p.DeliveryCount))
		}
		for _, cn := range g.Consumers {
			ids := []string{}
			for _, p := range cn.Pending {
				ids = append(ids, fmt.Sprintf("%s/%d/%d", p.ID, p.DeliveryTime.UnixMilli(), p.DeliveryCount))
			}
			gs.Consumers = append(gs.Consumers, cn.Name+": "+strings.Join(ids, ","))
			gs.ConsumerPendingCnt = append(gs.ConsumerPendingCnt, cn.PelCount)
		}
		st.Groups = append(st.Groups, gs)
	}
	return st
}

func TestRewriteExpired(t *testing.T) {
	data := newRDB(10).
		byte(opExpireTimeMs).u64(1000).key(TypeString, "old").str("v").
		byte(opExpireTimeMs).u64(5000).key(TypeString, "young").str("v").
		key(TypeString, "forever").str("v").
		finish()
	now := func() time.Time { return time.UnixMilli(2000) }
	var got []string
	frameAll(t, data, Options{}, func(rec *Record) {
		defer rec.Release()
		if err := Rewrite(rec, RewriteOptions{Now: now}, func(args [][]byte) error {
			got = append(got, fmtArgs(args))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
	want := []string{
		`"DEL" "young"`, `"SET" "young" "v"`, `"PEXPIREAT" "young" "5000"`,
		`"DEL" "forever"`, `"SET" "forever" "v"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestBigHashBoundedMemory: a 1,000,000-field hash is spilled to disk and
// rewritten with memory bounded by one batch.
func TestBigHashBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 1000000
	e := newRDB(10).key(TypeHash, "big").len(n)
	for i := 0; i < n; i++ {
		e.str(fmt.Sprintf("field:%07d", i)).str(fmt.Sprintf("v%d", i))
	}
	data := e.finish()
	var ms0, ms1, ms2 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	r := NewReader(bytes.NewReader(data), Options{MemLimit: 1 << 20, SpillDir: t.TempDir()})
	defer r.Close()
	rec, err := r.Next()
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Release()
	if !rec.Value.Spilled() || rec.Value.Len() < 20<<20 {
		t.Fatalf("spilled %v, %d bytes", rec.Value.Spilled(), rec.Value.Len())
	}
	runtime.ReadMemStats(&ms1)
	cmds, pairs := 0, 0
	next := 0
	want := make([]byte, 0, 32)
	err = Rewrite(rec, RewriteOptions{}, func(args [][]byte) error {
		if string(args[0]) != "HSET" {
			return nil
		}
		cmds++
		for i := 2; i < len(args); i += 2 {
			want = strconv.AppendInt(append(want[:0], "field:"...), int64(next+10000000), 10)
			want = append(want[:6], want[7:]...) // zero-padded to 7 digits
			if !bytes.Equal(args[i], want) {
				return fmt.Errorf("field %q, want %q", args[i], want)
			}
			next++
			pairs++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&ms2)
	if pairs != n || cmds != (n+511)/512 {
		t.Errorf("%d HSETs with %d pairs", cmds, pairs)
	}
	frameAlloc := ms1.TotalAlloc - ms0.TotalAlloc
	rwAlloc := ms2.TotalAlloc - ms1.TotalAlloc
	t.Logf("value %d MB; allocated: framing %d KB, rewrite %d KB", rec.Value.Len()>>20, frameAlloc>>10, rwAlloc>>10)
	if frameAlloc > 4<<20 {
		t.Errorf("framing allocated %d bytes", frameAlloc)
	}
	if rwAlloc > 2<<20 {
		t.Errorf("rewrite allocated %d bytes", rwAlloc)
	}
}
