package rdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand"
	"sort"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/redis/go-redis/v9"
)

const testLibCode = "#!lua name=ferrylib\nredis.register_function('ferry_echo', function(keys, args) return args[1] end)"

// fillServer loads every type and encoding Redis 7.0 produces. It returns the
// keys per db.
func fillServer(t testing.TB, srv *testServer) map[int][]string {
	t.Helper()
	ctx := context.Background()
	c := srv.client(0)
	defer c.Close()
	rnd := rand.New(rand.NewSource(1))
	randBytes := func(n int) string {
		b := make([]byte, n)
		rnd.Read(b)
		return string(b)
	}
	do := func(args ...any) { mustDo(t, c, args...) }

	// strings: raw, integer encodings, LZF, binary, empty, big
	do("SET", "s:small", "hello")
	do("SET", "s:int8", "-7")
	do("SET", "s:int16", "30000")
	do("SET", "s:int32", "-2000000000")
	do("SET", "s:int64", "1234567890123456789")
	do("SET", "s:lzf", strings.Repeat("abcdefgh", 500))
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	do("SET", "s:binary", string(all))
	do("SET", "s:empty", "")
	do("SET", "s:big", randBytes(300<<10))
	// over payloadChunk: captured in chunks, one string and one value
	// framed in many pieces
	do("SET", "s:chunked", randBytes(payloadChunk*5/2))
	do("SET", string(all[:40]), "binary key")
	do("SET", "123", "integer key")

	// lists: listpack, quicklist (several nodes), compressed nodes, plain nodes
	do("RPUSH", "l:lp", "a", "b", "1", "-2", "300000", "x")
	for i := 0; i < 3000; i++ {
		do("RPUSH", "l:quick", fmt.Sprintf("element-%d", i), i)
	}
	do("CONFIG", "SET", "list-compress-depth", "1")
	for i := 0; i < 2000; i++ {
		do("RPUSH", "l:compressed", strings.Repeat("z", 30)+fmt.Sprint(i))
	}
	do("CONFIG", "SET", "list-compress-depth", "0")
	do("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "10000")
	do("RPUSH", "l:plain", "small1", randBytes(12000), "small2", strings.Repeat("P", 20000), "small3")
	do("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1073741824")

	// sets: intset 16/32/64, hashtable
	do("SADD", "set:i16", 1, 2, 3, -5, 30000)
	do("SADD", "set:i32", 1, 100000, -100000)
	do("SADD", "set:i64", 1, int64(1)<<40, -(int64(1) << 50))
	do("SADD", "set:str", "a", "b", "c")
	for i := 0; i < 1000; i++ {
		do("SADD", "set:ht", fmt.Sprintf("member:%d", i))
		do("SADD", "set:bigint", i*7)
	}

	// zsets: listpack and skiplist, with infinities, ties, fractions
	do("ZADD", "z:lp", "1", "one", "1", "uno", "2.5", "two.5", "-0.125", "neg", "+inf", "top", "-inf", "bottom", "1e300", "huge", "0.1", "tenth")
	for i := 0; i < 300; i++ {
		score := float64(i) / 3
		if i%10 == 0 {
			score = 42 // ties
		}
		do("ZADD", "z:sl", score, fmt.Sprintf("m%03d", i))
	}
	do("ZADD", "z:sl", "+inf", "pinf", "-inf", "ninf", math.SmallestNonzeroFloat64, "tiny", -math.MaxFloat64, "min", "123456789012345678", "bigint")

	// hashes: listpack, hashtable (many fields / long value)
	do("HSET", "h:lp", "f1", "v1", "f2", "2", "f3", "-300000", "f4", "")
	for i := 0; i < 1000; i++ {
		do("HSET", "h:ht", fmt.Sprintf("field:%d", i), fmt.Sprintf("value:%d", i*i))
	}
	do("HSET", "h:longval", "f", strings.Repeat("v", 100), "n", 5)
	args := []any{"HSET", "h:chunked"}
	for i := 0; i < 30000; i++ {
		args = append(args, fmt.Sprintf("field:%d", i), randBytes(60))
	}
	do(args...) // ~2.2 MB: over payloadChunk, framed field by field

	// streams
	for i := 1; i <= 250; i++ {
		if i%3 == 0 {
			do("XADD", "st:main", fmt.Sprintf("%d-%d", 1000+i/5, i%5), "name", fmt.Sprint(i), "extra", "yes")
		} else {
			do("XADD", "st:main", fmt.Sprintf("%d-%d", 1000+i/5, i%5), "name", fmt.Sprint(i), "value", i*11)
		}
	}
	do("XDEL", "st:main", "1001-0", "1010-2", "1049-1")
	do("XGROUP", "CREATE", "st:main", "g1", "0")
	do("XGROUP", "CREATE", "st:main", "g2", "1020-0")
	do("XGROUP", "CREATE", "st:main", "g3", "$")
	do("XREADGROUP", "GROUP", "g1", "alice", "COUNT", "5", "STREAMS", "st:main", ">")
	do("XREADGROUP", "GROUP", "g1", "bob", "COUNT", "7", "STREAMS", "st:main", ">")
	do("XREADGROUP", "GROUP", "g2", "carol", "COUNT", "3", "STREAMS", "st:main", ">")
	do("XGROUP", "CREATECONSUMER", "st:main", "g1", "idle-dave")
	do("XACK", "st:main", "g1", "1000-1")
	do("XCLAIM", "st:main", "g1", "bob", "0", "1000-2")
	do("XGROUP", "CREATE", "st:empty", "g", "$", "MKSTREAM")
	do("XADD", "st:emptied", "5-5", "a", "b")
	do("XDEL", "st:emptied", "5-5")
	do("XGROUP", "CREATE", "st:nogroups", "g", "$", "MKSTREAM")
	do("XGROUP", "DESTROY", "st:nogroups", "g")
	for i := 0; i < 50; i++ {
		do("XADD", "st:trimmed", "*", "i", i)
	}
	do("XTRIM", "st:trimmed", "MAXLEN", "10")

	// TTLs
	do("SET", "ttl:s", "v", "PX", "100000000")
	do("HSET", "ttl:h", "a", "b")
	do("PEXPIREAT", "ttl:h", time.Now().Add(48*time.Hour).UnixMilli())
	do("RPUSH", "ttl:l", "x")
	do("EXPIRE", "ttl:l", "5000")

	// other dbs
	c1 := srv.client(1)
	defer c1.Close()
	mustDo(t, c1, "SET", "db1:s", "in db 1")
	mustDo(t, c1, "SADD", "db1:set", "x", "y")
	c5 := srv.client(5)
	defer c5.Close()
	mustDo(t, c5, "HSET", "db5:h", "k", "v")
	mustDo(t, c5, "SET", "db5:ttl", "v", "EX", "3600")

	do("FUNCTION", "LOAD", testLibCode)

	keys := map[int][]string{}
	for _, db := range []int{0, 1, 5} {
		cc := srv.client(db)
		ks, err := cc.Keys(ctx, "*").Result()
		cc.Close()
		if err != nil {
			t.Fatal(err)
		}
		sort.Strings(ks)
		keys[db] = ks
	}
	return keys
}

func frameAll(t testing.TB, data []byte, opt Options, each func(rec *Record)) *Reader {
	t.Helper()
	r := NewReader(bytes.NewReader(data), opt)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		each(rec)
	}
	return r
}

func TestFrameMatchesDump(t *testing.T) {
	srv := startRedis(t, "--enable-debug-command", "local")
	keys := fillServer(t, srv)
	data := srv.save(t)
	ctx := context.Background()
	clients := map[int]*redis.Client{}
	for db := range keys {
		clients[db] = srv.client(db)
		defer clients[db].Close()
	}

	for _, tc := range []struct {
		name string
		opt  Options
		wrap func(io.Reader) io.Reader
	}{
		{"default", Options{}, nil},
		{"spill", Options{MemLimit: 1000, SpillDir: t.TempDir()}, nil},
		{"chunks-then-spill", Options{MemLimit: payloadChunk * 3 / 2, SpillDir: t.TempDir()}, nil},
		{"onebyte", Options{MemLimit: 4096}, iotest.OneByteReader},
		{"halfreader", Options{BufSize: 1}, iotest.HalfReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in io.Reader = bytes.NewReader(data)
			if tc.wrap != nil {
				in = tc.wrap(in)
			}
			r := NewReader(in, tc.opt)
			defer r.Close()
			seen := map[int][]string{}
			var kinds = map[Kind]int{}
			var funcs []string
			var aux = map[string]string{}
			spilled := 0
			lastOff := int64(-1)
			types := map[byte]bool{}
			for {
				rec, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if r.Version() != 10 {
					t.Fatalf("version %d", r.Version())
				}
				if rec.Offset <= lastOff {
					t.Fatalf("offsets not increasing: %d after %d", rec.Offset, lastOff)
				}
				lastOff = rec.Offset
				kinds[rec.Kind]++
				switch rec.Kind {
				case KindAux:
					aux[string(rec.Aux[0])] = string(rec.Aux[1])
				case KindFunction:
					funcs = append(funcs, string(rec.Code))
				case KindKey:
					key := string(rec.Key)
					types[rec.Type] = true
					seen[rec.DB] = append(seen[rec.DB], key)
					if rec.Value.Spilled() {
						spilled++
					}
					cl := clients[rec.DB]
					want, err := cl.Dump(ctx, key).Result()
					if err != nil {
						t.Fatalf("DUMP %q: %v", key, err)
					}
					var got bytes.Buffer
					if err := rec.WriteRestorePayload(&got, 10); err != nil {
						t.Fatal(err)
					}
					if got.String() != want {
						t.Errorf("key %q (type %d): payload differs from DUMP (%d vs %d bytes)", key, rec.Type, got.Len(), len(want))
					}
					if n := rec.RestorePayloadLen(10); n != int64(len(want)) {
						t.Errorf("key %q: RestorePayloadLen %d, DUMP is %d bytes", key, n, len(want))
					}
					app, err := rec.AppendRestorePayload([]byte("x"), 10)
					if err != nil || string(app[1:]) != want {
						t.Errorf("key %q: AppendRestorePayload differs (%v)", key, err)
					}
					pt, err := cl.PExpireTime(ctx, key).Result()
					if err != nil {
						t.Fatal(err)
					}
					wantExp := int64(0)
					if pt > 0 {
						wantExp = pt.Milliseconds()
					}
					if rec.ExpireMs != wantExp {
						t.Errorf("key %q: ExpireMs %d, server says %d", key, rec.ExpireMs, wantExp)
					}
					// round trip through ParseDump
					pr, err := ParseDump(rec.DB, rec.Key, []byte(want), rec.ExpireMs)
					if err != nil {
						t.Errorf("ParseDump %q: %v", key, err)
					} else {
						if pr.Type != rec.Type || pr.Value.Len() != rec.Value.Len() {
							t.Errorf("ParseDump %q: type %d len %d", key, pr.Type, pr.Value.Len())
						}
						pr.Release()
					}
				}
				rec.Release()
			}
			for db, ks := range keys {
				sort.Strings(seen[db])
				if strings.Join(seen[db], "\x00") != strings.Join(ks, "\x00") {
					t.Errorf("db %d: framed keys %q, server has %q", db, seen[db], ks)
				}
			}
			if kinds[KindSelectDB] != 3 || kinds[KindResizeDB] != 3 {
				t.Errorf("selectdb/resizedb records: %v", kinds)
			}
			if len(funcs) != 1 || funcs[0] != testLibCode {
				t.Errorf("function records: %q", funcs)
			}
			if aux["redis-ver"] == "" || aux["redis-bits"] != "64" {
				t.Errorf("aux fields: %q", aux)
			}
			for _, ty := range []byte{TypeString, TypeSet, TypeZSet2, TypeHash, TypeSetIntset,
				TypeHashListpack, TypeZSetListpack, TypeListQuicklist2, TypeStreamListpacks2} {
				if !types[ty] {
					t.Errorf("no value of type %d in the dump", ty)
				}
			}
			if tc.opt.MemLimit == 1000 && spilled == 0 {
				t.Errorf("no value was spilled")
			}
			if r.Offset() != int64(len(data)) {
				t.Errorf("Offset %d after EOF, file has %d bytes", r.Offset(), len(data))
			}
			if _, err := r.Next(); err != io.EOF {
				t.Errorf("Next after EOF: %v", err)
			}
		})
	}
}

// TestRestoreIntoServer sends the framed payloads to a second server with
// RESTORE ... ABSTTL and checks they load.
func TestRestoreIntoServer(t *testing.T) {
	src := startRedis(t, "--enable-debug-command", "local")
	fillServer(t, src)
	data := src.save(t)
	dst := startRedis(t)
	ctx := context.Background()
	clients := map[int]*redis.Client{}
	n := 0
	frameAll(t, data, Options{MemLimit: 2048, SpillDir: t.TempDir()}, func(rec *Record) {
		defer rec.Release()
		if rec.Kind != KindKey {
			return
		}
		c := clients[rec.DB]
		if c == nil {
			c = dst.client(rec.DB)
			clients[rec.DB] = c
			t.Cleanup(func() { c.Close() })
		}
		var p bytes.Buffer
		if err := rec.WriteRestorePayload(&p, 10); err != nil {
			t.Fatal(err)
		}
		args := []any{"RESTORE", string(rec.Key), rec.ExpireMs, p.String(), "REPLACE"}
		if rec.ExpireMs > 0 {
			args = append(args, "ABSTTL")
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			t.Errorf("RESTORE %q: %v", rec.Key, err)
		}
		n++
	})
	if n < 35 {
		t.Fatalf("only %d keys", n)
	}
	// an old target version refuses newer types
	r := NewReader(bytes.NewReader(data), Options{})
	for {
		rec, err := r.Next()
		if err != nil {
			break
		}
		if rec.Kind == KindKey && rec.Type == TypeHashListpack {
			if err := rec.WriteRestorePayload(io.Discard, 9); err == nil {
				t.Errorf("type 16 payload for RDB 9 accepted")
			}
		}
		rec.Release()
	}
}

func TestParseDumpErrors(t *testing.T) {
	payload := func(t byte, body []byte, ver uint16) []byte {
		rec := &Record{Kind: KindKey, Type: t, Value: &Payload{mem: body, n: int64(len(body))}}
		b, err := rec.AppendRestorePayload(nil, int(ver))
		if err != nil {
			panic(err)
		}
		return b
	}
	good := payload(TypeString, []byte{3, 'a', 'b', 'c'}, 10)
	rec, err := ParseDump(0, []byte("k"), good, 0)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Value.Len() != 4 {
		t.Fatal(rec.Value.Len())
	}
	rec.Release()
	bad := append([]byte(nil), good...)
	bad[2] ^= 1
	if _, err := ParseDump(0, []byte("k"), bad, 0); !errors.Is(err, ErrChecksum) {
		t.Errorf("flipped byte: %v", err)
	}
	if _, err := ParseDump(0, []byte("k"), payload(TypeString, []byte{3, 'a', 'b', 'c', 'd'}, 10), 0); err == nil {
		t.Errorf("trailing byte accepted")
	}
	if _, err := ParseDump(0, []byte("k"), payload(TypeString, []byte{3, 'a'}, 10), 0); err == nil {
		t.Errorf("short value accepted")
	}
	if _, err := ParseDump(0, []byte("k"), payload(TypeString, []byte{0}, 13), 0); err == nil {
		t.Errorf("version 13 accepted")
	}
	if _, err := ParseDump(0, []byte("k"), good[:5], 0); err == nil {
		t.Errorf("short payload accepted")
	}
}

// TestChunkedPayload: values over payloadChunk are held in chunks, and
// everything that reads a value reads them as it reads one slice.
func TestChunkedPayload(t *testing.T) {
	srv := startRedis(t, "--enable-debug-command", "local")
	fillServer(t, srv)
	data := srv.save(t)
	c := srv.client(0)
	defer c.Close()
	ctx := context.Background()
	seen := 0
	frameAll(t, data, Options{}, func(rec *Record) {
		defer rec.Release()
		if rec.Kind != KindKey || rec.DB != 0 || !strings.HasSuffix(string(rec.Key), ":chunked") {
			return
		}
		seen++
		if len(rec.Value.chunks) < 2 || rec.Value.Bytes() != nil || rec.Value.Spilled() {
			t.Fatalf("%s: %d chunks, Bytes nil %v, spilled %v: want chunks in memory", rec.Key, len(rec.Value.chunks), rec.Value.Bytes() == nil, rec.Value.Spilled())
		}
		want, err := c.Dump(ctx, string(rec.Key)).Result()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rec.Value.openAt(payloadChunk + 7))
		if err != nil || string(raw) != want[1+payloadChunk+7:len(want)-10] {
			t.Errorf("%s: reading from an offset in the second chunk: %d bytes, %v", rec.Key, len(raw), err)
		}
		if _, ok := rec.PlainString(nil); ok {
			t.Errorf("%s: PlainString of a chunked value (SET would need it in one slice)", rec.Key)
		}
		if rec.Empty() {
			t.Errorf("%s: reported empty", rec.Key)
		}
		n := 0
		if err := Rewrite(rec, RewriteOptions{}, func(args [][]byte) error { n++; return nil }); err != nil || n == 0 {
			t.Errorf("%s: Rewrite: %d commands, %v", rec.Key, n, err)
		}
		// Taken in pieces, the payload is DUMP's, and the chunks leave
		// the record.
		plen := rec.RestorePayloadLen(10)
		pieces, release, err := rec.TakeRestorePayload(10)
		if err != nil || pieces == nil {
			t.Fatalf("%s: TakeRestorePayload: %v", rec.Key, err)
		}
		if got := bytes.Join(pieces, nil); string(got) != want || int64(len(got)) != plen {
			t.Errorf("%s: the pieces (%d bytes) are not DUMP's payload (%d bytes), RestorePayloadLen %d", rec.Key, len(got), len(want), plen)
		}
		if rec.Value.chunks != nil || rec.Value.Len() != 0 {
			t.Errorf("%s: the record still holds %d chunks", rec.Key, len(rec.Value.chunks))
		}
		release()
	})
	if seen != 2 {
		t.Fatalf("%d chunked keys framed, want 2", seen)
	}
}
