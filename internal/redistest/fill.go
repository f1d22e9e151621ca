package redistest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

// FillOptions configure FillAllTypes.
type FillOptions struct {
	Keys   int   // regular keys per db: a deterministic mix of every type, small values
	DBs    []int // dbs to fill (default [0]; a cluster has db 0 only)
	Big    bool  // also big keys (first db only): 5000-element hash/set(s)/zset/list and a 20000-entry stream
	Seed   int64
	Prefix string // key prefix (default "fill:"); key names also carry the db ("fill:db1:...")
	TTLPct int    // percent of regular keys given a TTL of 1-2 h
}

// FillStats is what FillAllTypes wrote.
type FillStats struct {
	PerDB     map[int]map[string]int // db → type → keys
	Keys      int                    // keys in total
	TTL       int                    // keys with a TTL
	Elements  int64                  // elements (string: 1, stream: entries)
	BigKeys   []string               // names of the big keys
	PlainList bool                   // a list with quicklist PLAIN nodes was written (needs DEBUG)
}

func (s *FillStats) add(db int, typ string, ttl bool, elems int) {
	if s.PerDB[db] == nil {
		s.PerDB[db] = map[string]int{}
	}
	s.PerDB[db][typ]++
	s.Keys++
	if ttl {
		s.TTL++
	}
	s.Elements += int64(elems)
}

type pipeSource interface{ Pipeline() redis.Pipeliner }

// filler writes one db through pipelines of up to 1000 commands.
type filler struct {
	t     testing.TB
	ctx   context.Context
	src   pipeSource
	p     redis.Pipeliner
	n     int
	rng   *rand.Rand
	db    int
	pre   string
	stats *FillStats
}

func (f *filler) do(args ...any) {
	f.p.Do(f.ctx, args...)
	if f.n++; f.n >= 1000 {
		f.flush()
	}
}

func (f *filler) flush() {
	if f.n == 0 {
		return
	}
	cmds, err := f.p.Exec(f.ctx)
	if err != nil {
		for _, c := range cmds {
			if c.Err() != nil {
				f.t.Fatalf("redistest: fill db%d: %v: %v", f.db, c.Args(), c.Err())
			}
		}
		f.t.Fatalf("redistest: fill db%d: %v", f.db, err)
	}
	f.p = f.src.Pipeline()
	f.n = 0
}

func (f *filler) key(name string) string { return fmt.Sprintf("%sdb%d:%s", f.pre, f.db, name) }

func (f *filler) bytes(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(f.rng.IntN(256))
	}
	return string(b)
}

func (f *filler) word(n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		b[i] = abc[f.rng.IntN(len(abc))]
	}
	return string(b)
}

// value returns a small value: often an integer (int encodings), else a word.
func (f *filler) value() string {
	switch f.rng.IntN(4) {
	case 0:
		return strconv.FormatInt(f.rng.Int64N(1<<40)-(1<<39), 10)
	case 1:
		return strconv.Itoa(f.rng.IntN(128))
	default:
		return f.word(1 + f.rng.IntN(40))
	}
}

// FillAllTypes writes every type and encoding of Redis 7.0 into c (a *redis.Client,
// any db, or a *redis.ClusterClient, db 0):
//
//	strings: raw, embstr, int (small, negative, int64 max), float, binary (\x00 \r\n \xff), empty,
//	         100 KB compressible, 8 KB random
//	lists:   small, integers of every listpack width, multi-node quicklist, a 10 KB element,
//	         PLAIN quicklist nodes (when DEBUG is enabled, as on Start's servers)
//	sets:    intset (16/32/64-bit), small strings (listpack on 7.2+), hashtable
//	zsets:   listpack (±inf, ties, negative, fractional, extreme scores), skiplist (many / long members)
//	hashes:  listpack, hashtable (many fields / long value)
//	streams: deleted entries, groups, consumers with and without pending entries, acked entries,
//	         an empty stream with a group (MKSTREAM), a stream whose entries were all deleted,
//	         varying field sets, several listpack nodes
//	TTLs:    seconds, milliseconds, EXPIREAT; TTLPct of the regular keys
//
// plus opt.Keys regular keys per db, and big keys with opt.Big. The data is
// deterministic for opt.Seed (expiry times are relative to now).
func FillAllTypes(t testing.TB, c redis.UniversalClient, opt FillOptions) FillStats {
	t.Helper()
	ctx := context.Background()
	if opt.Prefix == "" {
		opt.Prefix = "fill:"
	}
	dbs := opt.DBs
	if len(dbs) == 0 {
		dbs = []int{0}
	}
	stats := FillStats{PerDB: map[int]map[string]int{}}
	for i, db := range dbs {
		fillDB(ctx, t, c, db, opt, i == 0, &stats)
	}
	sort.Strings(stats.BigKeys)
	return stats
}

func fillDB(ctx context.Context, t testing.TB, c redis.UniversalClient, db int, opt FillOptions, first bool, stats *FillStats) {
	t.Helper()
	var src pipeSource
	var debug func(args ...any) error
	switch cl := c.(type) {
	case *redis.ClusterClient:
		if db != 0 {
			t.Fatalf("redistest: FillAllTypes: a cluster has db 0 only, asked for db%d", db)
		}
		src = cl
		debug = func(args ...any) error {
			return cl.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
				return n.Do(ctx, args...).Err()
			})
		}
	case *redis.Client:
		conn := cl.EphemeralConn() // SELECT must not leak into the caller's pool
		defer conn.Close()
		if err := conn.Select(ctx, db).Err(); err != nil {
			t.Fatalf("redistest: FillAllTypes: SELECT %d: %v", db, err)
		}
		src = conn
		debug = func(args ...any) error { return conn.Do(ctx, args...).Err() }
	default:
		t.Fatalf("redistest: FillAllTypes: unsupported client %T", c)
	}
	f := &filler{t: t, ctx: ctx, src: src, p: src.Pipeline(), db: db, pre: opt.Prefix, stats: stats,
		rng: rand.New(rand.NewPCG(uint64(opt.Seed), uint64(db)+1))}
	f.coverage(debug)
	f.regular(opt.Keys, opt.TTLPct)
	if opt.Big && first {
		f.big()
	}
	f.flush()
}

func (f *filler) coverage(debug func(args ...any) error) {
	s := f.stats
	// strings
	strs := []struct{ name, v string }{
		{"str:raw", f.word(100)},
		{"str:embstr", "hello"},
		{"str:int", "12345"},
		{"str:negint", "-987654321"},
		{"str:int64max", "9223372036854775807"},
		{"str:float", "3.14159"},
		{"str:bin", "\x00\r\nbin\xff\x00\r\n"},
		{"str:empty", ""},
		{"str:100k", strings.Repeat("ferry-compressible-", 100*1024/19+1)[:100*1024]},
		{"str:rand8k", f.bytes(8 * 1024)},
	}
	for _, kv := range strs {
		f.do("SET", f.key(kv.name), kv.v)
		s.add(f.db, "string", false, 1)
	}
	f.do("SET", f.key("str:ttl-s"), "expires", "EX", 7200)
	f.do("SET", f.key("str:ttl-ms"), "expires", "PX", 3_600_123)
	s.add(f.db, "string", true, 1)
	s.add(f.db, "string", true, 1)

	// lists
	f.do("RPUSH", f.key("list:small"), "a", "1", "b", "-2", "")
	f.do("RPUSH", f.key("list:ints"), "1", "100", "5000", "-30000", "8388607", "-2147483648",
		"1099511627776", "-4611686018427387904", "9223372036854775807")
	multi := []any{"RPUSH", f.key("list:multinode")}
	for i := 0; i < 1200; i++ {
		multi = append(multi, fmt.Sprintf("element-%04d-%s", i, f.word(8)))
	}
	f.do(multi...)
	f.do("RPUSH", f.key("list:bigelem"), "head", f.word(10*1024), "tail", f.bytes(9000))
	f.do("RPUSH", f.key("list:ttl"), "x", "y")
	f.do("EXPIREAT", f.key("list:ttl"), int64(4102444800)) // 2100-01-01; int64: the constant overflows a 32-bit int
	s.add(f.db, "list", false, 5)
	s.add(f.db, "list", false, 9)
	s.add(f.db, "list", false, 1200)
	s.add(f.db, "list", false, 4)
	s.add(f.db, "list", true, 2)
	f.flush()
	if debug("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "1024") == nil {
		f.do("RPUSH", f.key("list:plain"), "small", f.word(2000), "small2", f.word(3000))
		f.flush()
		_ = debug("DEBUG", "QUICKLIST-PACKED-THRESHOLD", "0") // 0 restores the default (1 GB)
		s.add(f.db, "list", false, 4)
		s.PlainList = true
	}

	// sets
	f.do("SADD", f.key("set:intset16"), "1", "2", "3", "-100", "30000")
	f.do("SADD", f.key("set:intset64"), "1", "-2147483649", "9223372036854775807", "-9223372036854775808")
	f.do("SADD", f.key("set:small"), "apple", "banana", "cherry", "7", "")
	ht := []any{"SADD", f.key("set:hashtable")}
	for i := 0; i < 700; i++ {
		ht = append(ht, "member-"+strconv.Itoa(i))
	}
	f.do(ht...)
	f.do("SADD", f.key("set:ttl"), "a", "b")
	f.do("PEXPIRE", f.key("set:ttl"), 5_400_777)
	s.add(f.db, "set", false, 5)
	s.add(f.db, "set", false, 4)
	s.add(f.db, "set", false, 5)
	s.add(f.db, "set", false, 700)
	s.add(f.db, "set", true, 2)

	// zsets
	f.do("ZADD", f.key("zset:small"), "-inf", "neginf", "+inf", "posinf", "1", "tie-a", "1", "tie-b", "1", "tie-c",
		"-2.5", "neg", "0.1", "tenth", "1e-300", "tiny", "1.7976931348623157e308", "max", "0", "zero",
		"3", "three", "-0.30000000000000004", "float-noise")
	sk := []any{"ZADD", f.key("zset:skiplist")}
	for i := 0; i < 200; i++ {
		sk = append(sk, strconv.FormatFloat(float64(i%50)/3, 'g', -1, 64), "m"+strconv.Itoa(i))
	}
	f.do(sk...)
	f.do("ZADD", f.key("zset:longmember"), 42, f.word(100), 1, "short")
	f.do("ZADD", f.key("zset:ttl"), 1, "a")
	f.do("EXPIRE", f.key("zset:ttl"), 3600)
	s.add(f.db, "zset", false, 12)
	s.add(f.db, "zset", false, 200)
	s.add(f.db, "zset", false, 2)
	s.add(f.db, "zset", true, 1)

	// hashes
	f.do("HSET", f.key("hash:small"), "name", "ferry", "n", "42", "neg", "-7", "empty", "", "bin", "\x00\r\n")
	f.do("HSET", f.key("hash:longvalue"), "f", f.word(200), "g", "1")
	hh := []any{"HSET", f.key("hash:hashtable")}
	for i := 0; i < 700; i++ {
		hh = append(hh, "field-"+strconv.Itoa(i), f.value())
	}
	f.do(hh...)
	f.do("HSET", f.key("hash:ttl"), "a", "1")
	f.do("PEXPIRE", f.key("hash:ttl"), 7_000_500)
	s.add(f.db, "hash", false, 5)
	s.add(f.db, "hash", false, 2)
	s.add(f.db, "hash", false, 700)
	s.add(f.db, "hash", true, 1)

	// streams
	st := f.key("stream:basic")
	for i := 1; i <= 60; i++ {
		f.do("XADD", st, fmt.Sprintf("1700000000000-%d", i), "n", strconv.Itoa(i), "payload", f.word(10))
	}
	f.do("XDEL", st, "1700000000000-3", "1700000000000-10", "1700000000000-60")
	f.do("XGROUP", "CREATE", st, "g1", "0")
	f.do("XGROUP", "CREATE", st, "g2", "$")
	f.do("XGROUP", "CREATE", st, "g3", "1700000000000-20")
	f.do("XREADGROUP", "GROUP", "g1", "alice", "COUNT", 5, "STREAMS", st, ">")
	f.do("XREADGROUP", "GROUP", "g1", "bob", "COUNT", 4, "STREAMS", st, ">")
	f.do("XACK", st, "g1", "1700000000000-1", "1700000000000-7")
	f.do("XGROUP", "CREATECONSUMER", st, "g1", "carol")
	f.do("XREADGROUP", "GROUP", "g3", "dave", "COUNT", 3, "STREAMS", st, ">")
	f.do("XCLAIM", st, "g1", "bob", 0, "1700000000000-2")
	s.add(f.db, "stream", false, 57)

	f.do("XGROUP", "CREATE", f.key("stream:empty"), "g", "$", "MKSTREAM")
	s.add(f.db, "stream", false, 0)

	ad := f.key("stream:alldeleted")
	f.do("XADD", ad, "5-1", "a", "1")
	f.do("XADD", ad, "5-2", "a", "2")
	f.do("XDEL", ad, "5-1", "5-2")
	s.add(f.db, "stream", false, 0)

	mf := f.key("stream:fields")
	for i := 1; i <= 250; i++ { // > stream-node-max-entries (100): several nodes
		args := []any{"XADD", mf, fmt.Sprintf("1700000001000-%d", i)}
		for j := 0; j <= i%4; j++ {
			args = append(args, "f"+strconv.Itoa(j), f.value())
		}
		if i%7 == 0 {
			args = append(args, "dup", "1", "dup", "2") // duplicate field names are kept
		}
		f.do(args...)
	}
	f.do("XADD", f.key("stream:ttl"), "1-1", "a", "b")
	f.do("EXPIRE", f.key("stream:ttl"), 5000)
	s.add(f.db, "stream", false, 250)
	s.add(f.db, "stream", true, 1)
	f.flush()
}

func (f *filler) regular(n, ttlPct int) {
	for i := 0; i < n; i++ {
		typ := []string{"string", "string", "list", "set", "zset", "hash", "stream"}[f.rng.IntN(7)]
		k := f.key(fmt.Sprintf("r:%s:%d", typ, i))
		elems := 1 + f.rng.IntN(12)
		switch typ {
		case "string":
			elems = 1
			f.do("SET", k, f.value())
		case "list":
			args := []any{"RPUSH", k}
			for j := 0; j < elems; j++ {
				args = append(args, f.value())
			}
			f.do(args...)
		case "set":
			args := []any{"SADD", k}
			ints := f.rng.IntN(2) == 0
			for j := 0; j < elems; j++ {
				if ints {
					args = append(args, strconv.Itoa(j*7-20))
				} else {
					args = append(args, f.word(3)+strconv.Itoa(j))
				}
			}
			f.do(args...)
		case "zset":
			args := []any{"ZADD", k}
			for j := 0; j < elems; j++ {
				args = append(args, FormatScore(math.Round(f.rng.NormFloat64()*1e6)/1e3), "m"+strconv.Itoa(j))
			}
			f.do(args...)
		case "hash":
			args := []any{"HSET", k}
			for j := 0; j < elems; j++ {
				args = append(args, "f"+strconv.Itoa(j), f.value())
			}
			f.do(args...)
		case "stream":
			for j := 1; j <= elems; j++ {
				f.do("XADD", k, fmt.Sprintf("%d-%d", 1000+i, j), "v", f.value())
			}
			if f.rng.IntN(3) == 0 {
				f.do("XGROUP", "CREATE", k, "grp", "0")
				f.do("XREADGROUP", "GROUP", "grp", "c"+strconv.Itoa(f.rng.IntN(2)), "COUNT", 1+f.rng.IntN(3), "STREAMS", k, ">")
			}
		}
		ttl := f.rng.IntN(100) < ttlPct
		if ttl {
			f.do("EXPIRE", k, 3600+f.rng.IntN(3600))
		}
		f.stats.add(f.db, typ, ttl, elems)
	}
	f.flush()
}

func (f *filler) big() {
	const n = 5000
	add := func(typ, name string, elems int, cmd func(k string, from, to int) []any) {
		k := f.key(name)
		for from := 0; from < elems; from += 500 {
			f.do(cmd(k, from, min(elems, from+500))...)
		}
		f.stats.add(f.db, typ, false, elems)
		f.stats.BigKeys = append(f.stats.BigKeys, k)
	}
	add("hash", "big:hash", n, func(k string, a, b int) []any {
		args := []any{"HSET", k}
		for i := a; i < b; i++ {
			args = append(args, "field:"+strconv.Itoa(i), f.value())
		}
		return args
	})
	add("set", "big:set", n, func(k string, a, b int) []any {
		args := []any{"SADD", k}
		for i := a; i < b; i++ {
			args = append(args, "member:"+strconv.Itoa(i))
		}
		return args
	})
	add("set", "big:intset", n, func(k string, a, b int) []any { // ints past set-max-intset-entries
		args := []any{"SADD", k}
		for i := a; i < b; i++ {
			args = append(args, strconv.Itoa(i*3-7000))
		}
		return args
	})
	add("zset", "big:zset", n, func(k string, a, b int) []any {
		args := []any{"ZADD", k}
		for i := a; i < b; i++ {
			args = append(args, FormatScore(float64(i%977)/7), "member:"+strconv.Itoa(i))
		}
		return args
	})
	add("list", "big:list", n, func(k string, a, b int) []any {
		args := []any{"RPUSH", k}
		for i := a; i < b; i++ {
			args = append(args, f.value())
		}
		return args
	})
	k := f.key("big:stream")
	for i := 1; i <= 20000; i++ {
		f.do("XADD", k, fmt.Sprintf("1700000002000-%d", i), "i", strconv.Itoa(i), "v", f.value())
	}
	f.do("XDEL", k, "1700000002000-100", "1700000002000-5000")
	f.do("XGROUP", "CREATE", k, "big", "0")
	f.do("XREADGROUP", "GROUP", "big", "reader", "COUNT", 1500, "STREAMS", k, ">")
	f.stats.add(f.db, "stream", false, 19998)
	f.stats.BigKeys = append(f.stats.BigKeys, k)
}

// FunctionLibraryCode is the library LoadFunctionLibrary loads.
const FunctionLibraryCode = `#!lua name=ferrytest
redis.register_function('ferrytest_echo', function(keys, args) return args[1] end)
redis.register_function{function_name='ferrytest_get', callback=function(keys, args) return redis.call('GET', keys[1]) end, flags={'no-writes'}}
`

// LoadFunctionLibrary loads (FUNCTION LOAD REPLACE) the library "ferrytest" so
// that RDB function records are covered; on a cluster into every master.
func LoadFunctionLibrary(t testing.TB, c redis.UniversalClient) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch cl := c.(type) {
	case *redis.ClusterClient:
		err = cl.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			return n.FunctionLoadReplace(ctx, FunctionLibraryCode).Err()
		})
	default:
		err = c.FunctionLoadReplace(ctx, FunctionLibraryCode).Err()
	}
	if err != nil {
		t.Fatalf("redistest: FUNCTION LOAD: %v", err)
	}
}
