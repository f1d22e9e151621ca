package router

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// args splits a sample on spaces; the token "" stands for an empty argument.
func args(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		if f == `""` {
			f = ""
		}
		out = append(out, []byte(f))
	}
	return out
}

// corpus has a realistic sample of every command of the table that has keys
// (and of every write or may-replicate one), as a client or a replication
// stream would send it. Keys are named so that no other argument has the
// same text. The server checks them with COMMAND GETKEYS.
var corpus = []string{
	// strings
	"APPEND k1 v", "DECR k1", "DECRBY k1 3", "INCR k1", "INCRBY k1 2", "INCRBYFLOAT k1 1.5",
	"GETDEL k1", "GETEX k1 PX 100", "GETEX k1 PERSIST", "GETSET k1 v",
	"SET k1 v", "set k1 v PXAT 1700000000000", "SET k1 v EX 10 GET", "SET k1 v KEEPTTL NX",
	"SETEX k1 10 v", "PSETEX k1 100 v", "SETNX k1 v", "SETRANGE k1 0 v", "SETBIT k1 7 1",
	"MSET k1 v1 k2 v2 k3 v3", "MSET k1 v1", "MSETNX k1 v1 k2 v2",
	"BITFIELD k1 SET u8 0 1 GET u4 0", "BITFIELD_RO k1 GET u8 0",
	"BITOP AND dst k1 k2 k3", "BITOP NOT dst k1", "BITCOUNT k1 0 -1", "BITPOS k1 1",
	"GET k1", "GETBIT k1 3", "GETRANGE k1 0 3", "STRLEN k1", "SUBSTR k1 0 2", "MGET k1 k2 k3",
	"LCS k1 k2 LEN",
	// generic
	"COPY k1 k2 DB 1 REPLACE", "COPY k1 k2", "DEL k1", "DEL k1 k2 k3", "UNLINK k1 k2",
	"EXISTS k1 k2", "TOUCH k1 k2", "DUMP k1", "TYPE k1", "TTL k1", "PTTL k1",
	"EXPIRETIME k1", "PEXPIRETIME k1",
	"EXPIRE k1 10 NX", "EXPIRE k1 10", "EXPIREAT k1 1700000000", "PEXPIRE k1 100 GT",
	"PEXPIREAT k1 1700000000000", "PERSIST k1", "MOVE k1 1", "RENAME k1 k2", "RENAMENX k1 k2",
	"RESTORE k1 0 payload REPLACE ABSTTL", "RESTORE k1 1000 payload IDLETIME 5",
	"RESTORE-ASKING k1 0 payload REPLACE",
	"MIGRATE 127.0.0.1 6380 k1 0 5000", "MIGRATE 127.0.0.1 6380 k1 0 5000 COPY REPLACE",
	`MIGRATE 127.0.0.1 6380 "" 0 5000 COPY REPLACE AUTH pw KEYS k1 k2 k3`,
	`MIGRATE 127.0.0.1 6380 "" 0 5000 AUTH2 user pw KEYS k1`,
	"OBJECT ENCODING k1", "OBJECT FREQ k1", "OBJECT IDLETIME k1", "OBJECT REFCOUNT k1",
	"MEMORY USAGE k1 SAMPLES 5", "WATCH k1 k2",
	"SORT k1", "SORT k1 BY w_* LIMIT 0 10 GET h_*->f GET # ALPHA DESC STORE dst",
	"SORT k1 STORE other STORE dst", "SORT k1 GET store STORE dst", "SORT_RO k1 BY nosort ALPHA",
	// hashes
	"HDEL h1 f1 f2", "HSET h1 f1 v1 f2 v2", "HMSET h1 f1 v1", "HSETNX h1 f v",
	"HINCRBY h1 f 1", "HINCRBYFLOAT h1 f 1.5", "HEXISTS h1 f", "HGET h1 f", "HGETALL h1",
	"HKEYS h1", "HLEN h1", "HMGET h1 f1 f2", "HRANDFIELD h1 2 WITHVALUES", "HSCAN h1 0 COUNT 10",
	"HSTRLEN h1 f", "HVALS h1",
	// lists
	"LPUSH l1 a b", "RPUSH l1 a", "LPUSHX l1 a", "RPUSHX l1 a b", "LINSERT l1 BEFORE a b",
	"LSET l1 0 v", "LREM l1 0 v", "LTRIM l1 0 -1", "LPOP l1 2", "RPOP l1", "RPOPLPUSH l1 l2",
	"LMOVE l1 l2 LEFT RIGHT", "BLMOVE l1 l2 LEFT RIGHT 0", "BRPOPLPUSH l1 l2 0",
	"BLPOP l1 l2 0", "BRPOP l1 0.5", "LMPOP 2 l1 l2 LEFT COUNT 2", "BLMPOP 0 2 l1 l2 LEFT",
	"LINDEX l1 0", "LLEN l1", "LPOS l1 a RANK 1", "LRANGE l1 0 -1",
	// sets
	"SADD s1 a b", "SREM s1 a", "SPOP s1 2", "SPOP s1", "SMOVE s1 s2 m",
	"SDIFFSTORE dst s1 s2", "SINTERSTORE dst s1 s2 s3", "SUNIONSTORE dst s1",
	"SCARD s1", "SDIFF s1 s2", "SINTER s1 s2", "SUNION s1 s2 s3", "SINTERCARD 2 s1 s2 LIMIT 1",
	"SISMEMBER s1 a", "SMEMBERS s1", "SMISMEMBER s1 a b", "SRANDMEMBER s1 2", "SSCAN s1 0",
	// sorted sets
	"ZADD z1 1 a 2 b", "ZADD z1 XX CH INCR 1 a", "ZINCRBY z1 1 a", "ZREM z1 a",
	"ZREMRANGEBYLEX z1 - +", "ZREMRANGEBYRANK z1 0 1", "ZREMRANGEBYSCORE z1 0 1",
	"ZPOPMIN z1 2", "ZPOPMAX z1", "BZPOPMIN z1 z2 0", "BZPOPMAX z1 0",
	"ZMPOP 2 z1 z2 MIN COUNT 1", "BZMPOP 0 1 z1 MAX", "ZRANGESTORE dst z1 0 -1",
	"ZUNIONSTORE dst 2 z1 z2 WEIGHTS 1 2 AGGREGATE SUM", "ZINTERSTORE dst 1 z1",
	"ZDIFFSTORE dst 2 z1 z2", "ZUNION 2 z1 z2 WITHSCORES", "ZINTER 3 z1 z2 z3", "ZDIFF 1 z1",
	"ZINTERCARD 2 z1 z2 LIMIT 5", "ZCARD z1", "ZCOUNT z1 0 1", "ZLEXCOUNT z1 - +",
	"ZMSCORE z1 a b", "ZRANDMEMBER z1 1", "ZRANGE z1 0 -1 WITHSCORES", "ZRANGEBYLEX z1 - +",
	"ZRANGEBYSCORE z1 0 1", "ZRANK z1 a", "ZREVRANGE z1 0 1", "ZREVRANGEBYLEX z1 + -",
	"ZREVRANGEBYSCORE z1 1 0", "ZREVRANK z1 a", "ZSCAN z1 0", "ZSCORE z1 a",
	// geo
	"GEOADD g1 13.3 38.1 Palermo", "GEORADIUS g1 15 37 200 km STORE dst",
	"GEORADIUS g1 15 37 200 km WITHDIST", "GEORADIUS g1 15 37 200 km COUNT 3 ASC STOREDIST dst",
	"GEORADIUSBYMEMBER g1 Palermo 100 km STORE dst", "GEORADIUSBYMEMBER g1 Palermo 100 km",
	"GEORADIUS_RO g1 15 37 200 km", "GEORADIUSBYMEMBER_RO g1 Palermo 100 km",
	"GEOSEARCHSTORE dst g1 FROMMEMBER Palermo BYRADIUS 10 km STOREDIST",
	"GEOSEARCH g1 FROMLONLAT 15 37 BYBOX 400 400 km", "GEODIST g1 Palermo Catania km",
	"GEOHASH g1 Palermo", "GEOPOS g1 Palermo",
	// hyperloglog
	"PFADD p1 a b", "PFMERGE dst p1 p2", "PFCOUNT p1 p2", "PFDEBUG GETREG p1",
	// streams
	"XADD x1 * f v", "XADD x1 MAXLEN ~ 10 * f v", "XACK x1 grp 1-0", "XAUTOCLAIM x1 grp c 0 0-0",
	"XCLAIM x1 grp c 0 1-0 TIME 1 RETRYCOUNT 1 FORCE JUSTID LASTID 1-0", "XDEL x1 1-0",
	"XTRIM x1 MAXLEN 10", "XSETID x1 1-0 ENTRIESADDED 1 MAXDELETEDID 0-0",
	"XGROUP CREATE x1 grp $ MKSTREAM", "xgroup createconsumer x1 grp c",
	"XGROUP DELCONSUMER x1 grp c", "XGROUP DESTROY x1 grp", "XGROUP SETID x1 grp 0 ENTRIESREAD 0",
	"XREADGROUP GROUP grp c COUNT 1 BLOCK 0 NOACK STREAMS x1 x2 > >",
	"XREAD COUNT 1 STREAMS x1 x2 0 0", "XREAD BLOCK 0 STREAMS x1 $",
	"XINFO CONSUMERS x1 grp", "XINFO GROUPS x1", "XINFO STREAM x1 FULL", "XLEN x1",
	"XPENDING x1 grp", "XRANGE x1 - +", "XREVRANGE x1 + -",
	// scripting and functions
	"EVAL return 2 k1 k2 a1", "EVALSHA 0123456789abcdef 1 k1", "EVAL_RO return 1 k1",
	"EVALSHA_RO 0123456789abcdef 1 k1 a", "FCALL f 2 k1 k2 a", "FCALL_RO f 1 k1",
	"EVAL return 0", "FCALL f 0 a1",
	// keyless
	"FUNCTION LOAD code", "FUNCTION DELETE lib", "FUNCTION FLUSH ASYNC", "FUNCTION RESTORE payload",
	"FLUSHALL", "FLUSHDB ASYNC", "SWAPDB 0 1", "PUBLISH ch msg", "PING", "SELECT 1", "MULTI",
	"EXEC", "REPLCONF GETACK *", "SCRIPT LOAD code", "SCRIPT FLUSH",
}

// corpusNewer are commands of Redis 7.2/7.4 that the 7.0 server of the test
// does not know (checked against their 7.4 key specs by hand), and deliberate
// differences from COMMAND GETKEYS, with the keys Keys must find.
var corpusNewer = map[string][]string{
	"HEXPIRE h1 10 FIELDS 1 f":               {"h1"},
	"HEXPIREAT h1 1700000000 NX FIELDS 1 f":  {"h1"},
	"HPEXPIRE h1 100 FIELDS 2 f g":           {"h1"},
	"HPEXPIREAT h1 1700000000000 FIELDS 1 f": {"h1"},
	"HPERSIST h1 FIELDS 1 f":                 {"h1"},
	"HTTL h1 FIELDS 1 f":                     {"h1"},
	"HPTTL h1 FIELDS 1 f":                    {"h1"},
	"HEXPIRETIME h1 FIELDS 1 f":              {"h1"},
	"HPEXPIRETIME h1 FIELDS 1 f":             {"h1"},
	"WAITAOF 1 0 0":                          nil,
	// Redis 8.0-8.4 and Valkey 9 (key specs from their src/commands/*.json)
	"HSETEX h1 FNX EX 10 FIELDS 1 f v": {"h1"},
	"HGETEX h1 PERSIST FIELDS 2 f g":   {"h1"},
	"HGETDEL h1 FIELDS 1 f":            {"h1"},
	"XDELEX x1 ACKED IDS 1 1-0":        {"x1"},
	"XACKDEL x1 grp KEEPREF IDS 1 1-0": {"x1"},
	"DELEX k1 IFEQ v":                  {"k1"},
	"DELIFEQ k1 v":                     {"k1"},
	"DIGEST k1":                        {"k1"},
	"MSETEX 2 k1 v1 k2 v2 NX PX 100":   {"k1", "k2"},
	"CLIENT NO-TOUCH ON":               nil,
	"CLUSTER MYSHARDID":                nil,
	// A shard channel is routed like a key; COMMAND GETKEYS has no keys.
	"SPUBLISH ch msg": {"ch"},
}

// malformed must all be refused.
var malformed = []string{
	"", "NOSUCHCOMMAND k", "JSON.SET k $ 1", "GET", "GET k1 k2", "SET k1", "DEL",
	"MSET k1 v1 k2", "MSETNX k1", "XGROUP", "XGROUP NOSUCH x1", "OBJECT ENCODING",
	"ZUNIONSTORE dst 3 z1 z2", "ZUNIONSTORE dst 0 z1", "ZUNIONSTORE dst -1 z1",
	"ZUNIONSTORE dst x z1", "SINTERCARD 0 s1", "LMPOP 4 l1 l2 LEFT", "EVAL s 2 k1",
	"EVAL s -1 k1", "BLMPOP 0 0 l1 LEFT", "SORT k1 STORE", "GEORADIUS g1 15 37 200 km STORE",
	"XREAD STREAMS x1", "XREAD STREAMS x1 x2 0", "XREAD FOO STREAMS x1 0",
	"XREADGROUP GROUP g c STREAMS x1", "MIGRATE h 1 k1 0 5000 KEYS k2",
	`MIGRATE h 1 "" 0 5000 KEYS`, "HSET h1 f", "MSETEX 2 k1 v1 k2", "MSETEX 0 k1 v1",
}

func names(a [][]byte, keys []int) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = string(a[k])
	}
	return out
}

func wantKind(name string, nkeys int) Kind {
	switch {
	case nkeys == 0:
		return Keyless
	case name == "DEL", name == "UNLINK", name == "MSET", name == "TOUCH", name == "EXISTS":
		return KeyedSplittable
	}
	return KeyedSingle
}

func TestKeysMatchServer(t *testing.T) {
	c := startRedis(t, false)
	ctx := context.Background()
	covered := map[string]bool{}
	for _, sample := range corpus {
		a := args(sample)
		keys, kind, err := Keys(a)
		if err != nil {
			t.Errorf("%s: %v", sample, err)
			continue
		}
		cmd, _ := Parse(a)
		covered[cmd.Name] = true
		got := names(a, keys)
		if !slices.IsSorted(keys) {
			t.Errorf("%s: key positions %v not ascending", sample, keys)
		}
		q := []any{"COMMAND", "GETKEYS"}
		for _, x := range a {
			q = append(q, x)
		}
		var want []string
		res, err := c.Do(ctx, q...).StringSlice()
		switch {
		case err == nil:
			want = res
		case strings.Contains(err.Error(), "no key arguments"):
		case len(a) == 1 && strings.Contains(err.Error(), "wrong number of arguments"):
			// COMMAND GETKEYS of 7.0 needs an argument after the name.
		default:
			t.Errorf("%s: server: %v", sample, err)
			continue
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: keys %q, server says %q", sample, got, want)
		}
		if k := wantKind(cmd.Name, len(keys)); kind != k {
			t.Errorf("%s: kind %v, want %v", sample, kind, k)
		}
	}
	for sample, want := range corpusNewer {
		a := args(sample)
		keys, kind, err := Keys(a)
		if err != nil {
			t.Errorf("%s: %v", sample, err)
			continue
		}
		cmd, _ := Parse(a)
		covered[cmd.Name] = true
		if got := names(a, keys); !slices.Equal(got, want) && len(got)+len(want) > 0 {
			t.Errorf("%s: keys %q, want %q", sample, got, want)
		}
		if k := wantKind(cmd.Name, len(keys)); kind != k {
			t.Errorf("%s: kind %v, want %v", sample, kind, k)
		}
	}
	// Every command with keys, and every write or may-replicate one, has a sample.
	for _, s := range allSpecs() {
		hasKeys := s.find != findRange || s.first != 0
		if (hasKeys || s.flags&(Write|MayReplicate) != 0) && !covered[s.name] {
			if s.flags&Channel == 0 && strings.HasSuffix(s.name, "SUBSCRIBE") {
				continue
			}
			t.Errorf("no sample of %s", s.name)
		}
	}
}

func allSpecs() []*spec {
	var out []*spec
	for i := range commandTable {
		s := &commandTable[i]
		if s.subs == nil {
			out = append(out, s)
		}
		for j := range s.subs {
			out = append(out, &s.subs[j])
		}
	}
	return out
}

func TestMalformed(t *testing.T) {
	for _, sample := range malformed {
		keys, kind, err := Keys(args(sample))
		if err == nil {
			t.Errorf("%q: keys %v kind %v, want an error", sample, keys, kind)
			continue
		}
		if kind != Invalid || keys != nil {
			t.Errorf("%q: error with keys %v kind %v", sample, keys, kind)
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnknownCommand) {
			t.Errorf("%q: %v wraps neither ErrMalformed nor ErrUnknownCommand", sample, err)
		}
	}
	_, _, err := Keys(args("JSON.SET k $ 1"))
	if !errors.Is(err, ErrUnknownCommand) || err.Error() != `unknown command "JSON.SET"` {
		t.Errorf("JSON.SET: %v", err)
	}
}

// arityChanged are the arities that changed from Redis 7.0 to 7.4.
var arityChanged = map[string][2]int64{
	"ZRANK": {3, -3}, "ZREVRANK": {3, -3}, // WITHSCORE (7.2)
	"COMMAND GETKEYS": {-4, -3}, "COMMAND GETKEYSANDFLAGS": {-4, -3}, // a command without arguments (7.2)
}

// TestTableMatchesServer checks the table against the server's own: every
// command and subcommand it knows is in the table, with the same arity and
// write flag, and, for commands whose keys are a plain range, the same legacy
// first/last/step.
func TestTableMatchesServer(t *testing.T) {
	c := startRedis(t, false)
	res, err := c.Do(context.Background(), "COMMAND").Slice()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	var check func(e []any, parent string)
	check = func(e []any, parent string) {
		name := strings.ToUpper(e[0].(string))
		name = strings.ReplaceAll(name, "|", " ")
		arity := e[1].(int64)
		var flags []string
		for _, f := range e[2].([]any) {
			flags = append(flags, f.(string))
		}
		first, last, step := e[3].(int64), e[4].(int64), e[5].(int64)
		var s *spec
		if parent == "" {
			s = builtin.cmds[name]
		} else if p := builtin.cmds[parent]; p != nil {
			s = p.subMap[name[len(parent)+1:]]
		}
		if s == nil {
			t.Errorf("%s: not in the table", name)
			return
		}
		seen++
		if a, ok := arityChanged[name]; ok {
			if arity != a[0] {
				t.Errorf("%s: server arity %d, want %d", name, arity, a[0])
			}
			arity = a[1]
		}
		if int64(s.arity) != arity {
			t.Errorf("%s: arity %d, server %d", name, s.arity, arity)
		}
		if w := slices.Contains(flags, "write"); w != (s.flags&Write != 0) {
			t.Errorf("%s: write flag %v, server %v", name, !w, w)
		}
		if s.find == findRange && s.subs == nil && !strings.HasSuffix(name, "SUBSCRIBE") && s.flags&Channel == 0 {
			st := int64(s.step)
			if st == 0 {
				st = 1
			}
			if s.first == 0 {
				st = 0
			}
			if int64(s.first) != first || int64(s.last) != last || st != step {
				t.Errorf("%s: keys %d,%d,%d, server %d,%d,%d", name, s.first, s.last, st, first, last, step)
			}
		}
		if len(e) > 9 {
			for _, sub := range e[9].([]any) {
				check(sub.([]any), name)
			}
		}
	}
	for _, e := range res {
		check(e.([]any), "")
	}
	t.Logf("%d commands and subcommands checked", seen)
}

func TestKindsAndNames(t *testing.T) {
	for _, tc := range []struct {
		sample, name string
		kind         Kind
		write        bool
	}{
		{"set k v", "SET", KeyedSingle, true},
		{"xgroup create x g $", "XGROUP CREATE", KeyedSingle, true},
		{"Del a b", "DEL", KeyedSplittable, true},
		{"flushall", "FLUSHALL", Keyless, true},
		{"eval s 0", "EVAL", Keyless, false},
		{"publish ch m", "PUBLISH", Keyless, false},
		{"exec", "EXEC", Keyless, false},
	} {
		c, err := Parse(args(tc.sample))
		if err != nil {
			t.Fatalf("%s: %v", tc.sample, err)
		}
		if c.Name != tc.name || c.Kind != tc.kind || c.Has(Write) != tc.write {
			t.Errorf("%s: %+v", tc.sample, c)
		}
	}
}

func TestKeysDoNotAllocate(t *testing.T) {
	for _, sample := range []string{
		"SET k1 v PXAT 1700000000000", "set k1 v", "HSET h f v", "DEL k1", "DEL {t}1 {t}2 {t}3",
		"MSET {t}1 v1 {t}2 v2", "XADD x * f v", "PEXPIREAT k 1", "RENAME {t}a {t}b",
		"LMPOP 2 {t}a {t}b LEFT", "XGROUP SETID x g 0", "SELECT 0", "ZUNION 2 {t}a {t}b",
		"XREAD STREAMS {t}a {t}b 0 0", "EVALSHA 0123 1 k a",
	} {
		a := args(sample)
		if n := testing.AllocsPerRun(100, func() { Keys(a) }); n != 0 {
			t.Errorf("Keys(%s): %v allocations", sample, n)
		}
		if n := testing.AllocsPerRun(100, func() { SlotOf(a) }); n != 0 {
			t.Errorf("SlotOf(%s): %v allocations", sample, n)
		}
		// The applier's path: parsed once, its slot, its parts.
		var c Command
		if n := testing.AllocsPerRun(100, func() { c, _ = Parse(a); c.Slot(); c.Parts() }); n != 0 {
			t.Errorf("Parse, Slot, Parts (%s): %v allocations", sample, n)
		}
	}
}

func TestLongCommands(t *testing.T) {
	// Beyond the shared position tables: positions are allocated.
	for _, n := range []int{2, 127, 128, 129, 254, 255, 256, 300, 1000} {
		for _, name := range []string{"DEL", "MSET", "SUNIONSTORE"} {
			a := [][]byte{[]byte(name)}
			for i := range n {
				a = append(a, fmt.Appendf(nil, "{t}k%d", i))
				if name == "MSET" {
					a = append(a, []byte("v"))
				}
			}
			keys, _, err := Keys(a)
			if err != nil {
				t.Fatalf("%s with %d keys: %v", name, n, err)
			}
			if len(keys) != n {
				t.Fatalf("%s with %d keys: %d keys", name, n, len(keys))
			}
			for i, k := range keys {
				want := i + 1
				if name == "MSET" {
					want = 2*i + 1
				}
				if k != want {
					t.Fatalf("%s with %d keys: key %d at %d", name, n, i, k)
				}
			}
			if s, _, err := SlotOf(a); err != nil || s != SlotString("t") {
				t.Fatalf("%s with %d keys: slot %d %v", name, n, s, err)
			}
		}
	}
}

// TestParseNeverPanics feeds every command of the table arguments made of
// keywords, counts and garbage: Parse must not panic, and what it accepts
// must have sane key positions.
func TestParseNeverPanics(t *testing.T) {
	pool := []string{"STORE", "STOREDIST", "STREAMS", "KEYS", "LIMIT", "GET", "BY", "GROUP",
		"BLOCK", "COUNT", "NOACK", "AUTH", "AUTH2", "0", "1", "2", "3", "-1", "99999999999", "", "k", "{t}"}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range allSpecs() {
		words := strings.Fields(s.name)
		for range 300 {
			a := [][]byte{}
			for _, w := range words {
				a = append(a, []byte(w))
			}
			for range rng.IntN(12) {
				a = append(a, []byte(pool[rng.IntN(len(pool))]))
			}
			c, err := Parse(a)
			if err != nil {
				continue
			}
			for i, k := range c.Keys {
				if k < len(words) || k >= len(a) || i > 0 && k <= c.Keys[i-1] {
					t.Fatalf("%q: keys %v", a, c.Keys)
				}
			}
			SplitBySlot(a)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range corpus {
		f.Add(strings.ReplaceAll(s, " ", "\n"))
	}
	f.Fuzz(func(t *testing.T, s string) {
		var a [][]byte
		for _, x := range strings.Split(s, "\n") {
			a = append(a, []byte(x))
		}
		c, err := Parse(a)
		if err != nil {
			return
		}
		for i, k := range c.Keys {
			if k < 1 || k >= len(a) || i > 0 && k <= c.Keys[i-1] {
				t.Fatalf("%q: keys %v", a, c.Keys)
			}
		}
		parts, err := SplitBySlot(a)
		if err == nil && c.Kind == KeyedSplittable {
			n := 0
			for _, p := range parts {
				n += len(p.Args) - 1
			}
			if n != len(a)-1 {
				t.Fatalf("%q: parts %v", a, parts)
			}
		}
	})
}
