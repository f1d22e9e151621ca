package filter

import (
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/router"
)

// cmd splits a sample on spaces; the token "" stands for an empty argument.
func cmd(s string) [][]byte {
	var out [][]byte
	for _, f := range strings.Fields(s) {
		if f == `""` {
			f = ""
		}
		out = append(out, []byte(f))
	}
	return out
}

func str(args [][]byte) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return strings.Join(s, " ")
}

func mustNew(t *testing.T, c conf.Filter) *Filter {
	t.Helper()
	f, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNew(t *testing.T) {
	if f, err := New(conf.Filter{}); f != nil || err != nil {
		t.Fatalf("empty filter: %v, %v; want nil, nil", f, err)
	}
	for _, c := range []struct {
		f    conf.Filter
		want string
	}{
		{conf.Filter{Regex: []string{"("}}, "regex:"},
		{conf.Filter{BlockRegex: []string{"a**"}}, "block_regex:"},
		{conf.Filter{Types: []string{"blob"}}, "types:"},
		{conf.Filter{BlockTypes: []string{"blob"}}, "block_types:"},
		{conf.Filter{DBs: []int{-1}}, "dbs:"},
		{conf.Filter{BlockDBs: []int{-1}}, "block_dbs:"},
		{conf.Filter{Prefixes: []string{""}}, "prefixes:"},
		{conf.Filter{BlockPrefixes: []string{""}}, "block_prefixes:"},
	} {
		if _, err := New(c.f); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one starting with %q", c.f, err, c.want)
		}
	}
	// Types and commands are case-insensitive even without conf's Validate.
	f := mustNew(t, conf.Filter{Types: []string{"Hash"}, Commands: []string{" SET "}})
	if !f.Type("hash") || f.Type("string") {
		t.Error("types = [Hash]")
	}
	if f.Command(0, cmd("set k v")) != Apply || f.Command(0, cmd("HSET h f v")) != Drop {
		t.Error("commands = [SET]")
	}
}

func TestNilFilter(t *testing.T) {
	var f *Filter
	a := cmd("FLUSHALL")
	if out, d, why := f.Rewrite(3, a); d != Apply || &out[0] != &a[0] || why != "" {
		t.Fatal("nil filter must apply args itself")
	}
	if !f.DB(7) || !f.Key(7, []byte("k")) || !f.Type("stream") || !f.Record(1, []byte("k"), "module") || !f.Functions() {
		t.Fatal("nil filter must allow everything")
	}
}

func TestKeyRules(t *testing.T) {
	for _, c := range []struct {
		name string
		f    conf.Filter
		db   int
		key  string
		want bool
	}{
		{"no key rules", conf.Filter{DBs: []int{0}}, 0, "anything", true},
		{"dbs allows", conf.Filter{DBs: []int{0, 2}}, 2, "k", true},
		{"dbs excludes", conf.Filter{DBs: []int{0, 2}}, 1, "k", false},
		{"block_dbs", conf.Filter{BlockDBs: []int{1}}, 1, "k", false},
		{"block_dbs other", conf.Filter{BlockDBs: []int{1}}, 0, "k", true},
		{"prefix match", conf.Filter{Prefixes: []string{"user:", "order:"}}, 0, "order:1", true},
		{"prefix miss", conf.Filter{Prefixes: []string{"user:"}}, 0, "users", false},
		{"prefix is bytes", conf.Filter{Prefixes: []string{"\xff"}}, 0, "\xff\x00", true},
		{"block prefix wins", conf.Filter{Prefixes: []string{"user:"}, BlockPrefixes: []string{"user:tmp:"}}, 0, "user:tmp:1", false},
		{"block prefix alone", conf.Filter{BlockPrefixes: []string{"tmp:"}}, 0, "user:1", true},
		{"regex unanchored", conf.Filter{Regex: []string{`:\d+$`}}, 0, "user:12", true},
		{"regex miss", conf.Filter{Regex: []string{`^user:\d+$`}}, 0, "user:x", false},
		{"block regex wins", conf.Filter{Regex: []string{"user"}, BlockRegex: []string{"session"}}, 0, "user:session", false},
		{"kinds combine with AND", conf.Filter{Prefixes: []string{"user:"}, Regex: []string{`\d$`}}, 0, "user:x", false},
		{"kinds AND, all pass", conf.Filter{Prefixes: []string{"user:"}, Regex: []string{`\d$`}, DBs: []int{0}}, 0, "user:1", true},
		{"db fails first", conf.Filter{Prefixes: []string{"user:"}, DBs: []int{1}}, 0, "user:1", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := mustNew(t, c.f)
			if got := f.Key(c.db, []byte(c.key)); got != c.want {
				t.Fatalf("Key(%d, %q) = %v, want %v", c.db, c.key, got, c.want)
			}
		})
	}
}

func TestTypeRules(t *testing.T) {
	allow := mustNew(t, conf.Filter{Types: []string{"hash", "zset"}})
	block := mustNew(t, conf.Filter{BlockTypes: []string{"stream"}})
	both := mustNew(t, conf.Filter{Types: []string{"hash", "stream"}, BlockTypes: []string{"stream"}})
	for _, c := range []struct {
		f    *Filter
		typ  string
		want bool
	}{
		{allow, "hash", true}, {allow, "zset", true}, {allow, "string", false}, {allow, "module", false},
		{allow, "unknown", false},
		{block, "stream", false}, {block, "string", true}, {block, "unknown", true},
		{both, "stream", false}, {both, "hash", true},
	} {
		if got := c.f.Type(c.typ); got != c.want {
			t.Errorf("Type(%q) = %v, want %v", c.typ, got, c.want)
		}
	}
	f := mustNew(t, conf.Filter{Types: []string{"hash"}, Prefixes: []string{"a"}})
	if !f.Record(0, []byte("a1"), "hash") || f.Record(0, []byte("a1"), "set") || f.Record(0, []byte("b"), "hash") {
		t.Error("Record must apply Key and Type")
	}
}

// rewriteCase is one command through one filter.
type rewriteCase struct {
	name string
	f    conf.Filter
	db   int
	in   string
	want Decision
	out  string // Apply: the command sent ("" = the input itself)
	why  string // Drop: the reason; Refuse: a substring of it
}

func runCases(t *testing.T, cases []rewriteCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := mustNew(t, c.f)
			in := cmd(c.in)
			orig := str(in)
			out, d, why := f.Rewrite(c.db, in)
			if str(in) != orig {
				t.Fatalf("Rewrite wrote into its input: %q became %q", orig, str(in))
			}
			if d != c.want {
				t.Fatalf("%s in db %d: %s (%s), want %s", c.in, c.db, d, why, c.want)
			}
			switch d {
			case Apply:
				want := c.out
				if want == "" {
					want = c.in
				}
				if str(out) != want {
					t.Fatalf("%s: sent %q, want %q", c.in, str(out), want)
				}
				if why != "" {
					t.Fatalf("Apply with a reason %q", why)
				}
			case Drop:
				if why != c.why {
					t.Fatalf("%s: dropped because %q, want %q", c.in, why, c.why)
				}
			case Refuse:
				if !strings.Contains(why, c.why) || strings.Contains(why, "\n") {
					t.Fatalf("%s: refused because %q, want one line containing %q", c.in, why, c.why)
				}
			}
			if got := f.Command(c.db, in); got != d {
				t.Fatalf("Command = %s, Rewrite = %s", got, d)
			}
		})
	}
}

var (
	user   = conf.Filter{Prefixes: []string{"u:"}}
	db0    = conf.Filter{DBs: []int{0}}
	noDB1  = conf.Filter{BlockDBs: []int{1}}
	hashes = conf.Filter{Types: []string{"hash"}}
)

func TestCommandRules(t *testing.T) {
	runCases(t, []rewriteCase{
		{name: "no command rule", f: db0, in: "SET k v", want: Apply},
		{name: "allowed", f: conf.Filter{Commands: []string{"set", "del"}}, in: "set k v", want: Apply},
		{name: "not in allow list", f: conf.Filter{Commands: []string{"set"}}, in: "HSET h f v", want: Drop, why: WhyCommand},
		{name: "blocked", f: conf.Filter{BlockCommands: []string{"flushall"}}, in: "FLUSHALL ASYNC", want: Drop, why: WhyCommand},
		{name: "block wins", f: conf.Filter{Commands: []string{"set"}, BlockCommands: []string{"set"}}, in: "SET k v", want: Drop, why: WhyCommand},
		{name: "command covers subcommands", f: conf.Filter{BlockCommands: []string{"function"}}, in: "FUNCTION DELETE lib", want: Drop, why: WhyCommand},
		{name: "subcommand entry", f: conf.Filter{BlockCommands: []string{"function|flush"}}, in: "function flush", want: Drop, why: WhyCommand},
		{name: "other subcommand passes", f: conf.Filter{BlockCommands: []string{"function|flush"}}, in: "FUNCTION DELETE lib", want: Apply},
		{name: "allow subcommand", f: conf.Filter{Commands: []string{"xgroup|create", "xadd"}}, in: "XGROUP CREATE s g $", want: Apply},
		{name: "allow subcommand, other dropped", f: conf.Filter{Commands: []string{"xgroup|create"}}, in: "XGROUP DESTROY s g", want: Drop, why: WhyCommand},
		{name: "script keyless", f: conf.Filter{BlockCommands: []string{"script"}}, in: "SCRIPT FLUSH", want: Drop, why: WhyCommand},
		{name: "control never filtered", f: conf.Filter{Commands: []string{"set"}}, in: "SELECT 3", want: Apply},
		{name: "multi never filtered", f: conf.Filter{Commands: []string{"set"}}, in: "multi", want: Apply},
		{name: "exec never filtered", f: conf.Filter{BlockCommands: []string{"exec"}}, in: "EXEC", want: Apply},
		{name: "ping never filtered", f: conf.Filter{Commands: []string{"set"}}, in: "PING", want: Apply},
		{name: "replconf never filtered", f: conf.Filter{Commands: []string{"set"}}, in: "REPLCONF GETACK *", want: Apply},
		{name: "the source command decides, not its rewrite", f: conf.Filter{Commands: []string{"rename"}, Prefixes: []string{"u:"}}, in: "RENAME u:a x", want: Apply, out: "DEL u:a"},
		{name: "unknown command by name", f: conf.Filter{BlockCommands: []string{"json.set"}}, in: "JSON.SET k $ 1", want: Drop, why: WhyCommand},
		{name: "unknown command allowed", f: conf.Filter{Commands: []string{"json.set"}}, in: "JSON.SET k $ 1", want: Apply},
		{name: "long name", f: conf.Filter{Commands: []string{"set"}}, in: strings.Repeat("X", 200) + " a", want: Drop, why: WhyCommand},
	})
}

func TestKeylessCommands(t *testing.T) {
	runCases(t, []rewriteCase{
		{name: "flushdb copied db", f: db0, db: 0, in: "FLUSHDB", want: Apply},
		{name: "flushdb other db", f: db0, db: 2, in: "FLUSHDB ASYNC", want: Drop, why: WhyDB},
		{name: "flushdb with key rules", f: user, db: 0, in: "FLUSHDB", want: Apply},
		{name: "flushall without db rules", f: user, in: "FLUSHALL", want: Apply},
		{name: "flushall with dbs", f: db0, in: "FLUSHALL", want: Refuse, why: `block_commands = ["flushall"]`},
		{name: "flushall with block_dbs", f: noDB1, in: "FLUSHALL SYNC", want: Refuse, why: "FLUSHALL"},
		{name: "flushall blocked", f: conf.Filter{DBs: []int{0}, BlockCommands: []string{"flushall"}}, in: "FLUSHALL", want: Drop, why: WhyCommand},
		{name: "swapdb both copied", f: noDB1, in: "SWAPDB 0 2", want: Apply},
		{name: "swapdb neither copied", f: conf.Filter{DBs: []int{5}}, in: "SWAPDB 0 2", want: Drop, why: WhyDB},
		{name: "swapdb half", f: noDB1, in: "SWAPDB 0 1", want: Refuse, why: "db 1 is not copied"},
		{name: "swapdb half reversed", f: noDB1, in: "SWAPDB 1 0", want: Refuse, why: "into db 0"},
		{name: "swapdb malformed goes through", f: noDB1, in: "SWAPDB x 0", want: Apply},
		{name: "publish", f: db0, db: 4, in: "PUBLISH ch msg", want: Apply},
		{name: "spublish channel is no key", f: user, in: "SPUBLISH ch msg", want: Apply},
		{name: "function load", f: user, db: 9, in: "FUNCTION LOAD code", want: Apply},
		{name: "eval without keys", f: user, in: "EVAL return 0", want: Apply},
	})
}

func TestSingleKeyCommands(t *testing.T) {
	runCases(t, []rewriteCase{
		{name: "copied key", f: user, in: "SET u:1 v", want: Apply},
		{name: "other key", f: user, in: "SET x:1 v", want: Drop, why: WhyKey},
		{name: "other db", f: db0, db: 1, in: "HSET h f v", want: Drop, why: WhyDB},
		{name: "other db and key", f: conf.Filter{DBs: []int{0}, Prefixes: []string{"u:"}}, db: 1, in: "SET u:1 v", want: Drop, why: WhyDB},
		{name: "xgroup key is the second argument", f: user, in: "XGROUP CREATE u:s g $", want: Apply},
		{name: "xgroup other key", f: user, in: "XGROUP CREATE x:s g $", want: Drop, why: WhyKey},
		{name: "expire", f: user, in: "PEXPIREAT x 1", want: Drop, why: WhyKey},
		{name: "lowercase command", f: user, in: "set u:1 v", want: Apply},
		{name: "db rules only: allowed", f: noDB1, db: 0, in: "LPUSH l a", want: Apply},
		{name: "only command rules: keys untouched", f: conf.Filter{BlockCommands: []string{"del"}}, db: 1, in: "SET x v", want: Apply},
	})
}

// TestMultiKeyCommands pins the semantics of commands whose keys fall on both
// sides of the filter (copied: prefix "u:"; not copied: anything else):
//
//   - splittable commands (DEL, UNLINK, TOUCH, EXISTS, MSET, MSETNX) keep the
//     copied keys, and are dropped when none is left;
//   - moves (RENAME, RENAMENX, SMOVE, LMOVE, BLMOVE, RPOPLPUSH, BRPOPLPUSH,
//     COPY, MOVE) become what they do to the copied side when the source is
//     copied (DEL, SREM, LPOP/RPOP, nothing) and are refused when only the
//     destination is (the target lacks the value), except SMOVE, which
//     becomes SADD of the member;
//   - stores (…STORE, BITOP, PFMERGE, SORT/GEORADIUS … STORE) are dropped when
//     the destination is not copied and refused when it is but a source is
//     not;
//   - anything else that mixes both sides (scripts, LMPOP, BLPOP …) is
//     refused;
//   - in every shape, all keys copied → applied as is, none → dropped.
func TestMultiKeyCommands(t *testing.T) {
	runCases(t, []rewriteCase{
		// splittable
		{name: "del all copied", f: user, in: "DEL u:a u:b", want: Apply},
		{name: "del none copied", f: user, in: "DEL a b", want: Drop, why: WhyKey},
		{name: "del some", f: user, in: "DEL u:a x u:b y", want: Apply, out: "DEL u:a u:b"},
		{name: "unlink some", f: user, in: "unlink x u:b", want: Apply, out: "unlink u:b"},
		{name: "touch some", f: user, in: "TOUCH u:a x", want: Apply, out: "TOUCH u:a"},
		{name: "exists some", f: user, in: "EXISTS x u:a", want: Apply, out: "EXISTS u:a"},
		{name: "mset some keeps values", f: user, in: "MSET u:a 1 x 2 u:b 3", want: Apply, out: "MSET u:a 1 u:b 3"},
		{name: "mset key-like value", f: user, in: "MSET x u:v u:a x", want: Apply, out: "MSET u:a x"},
		{name: "msetnx some", f: user, in: "MSETNX x 1 u:a 2", want: Apply, out: "MSETNX u:a 2"},
		{name: "mset none", f: user, in: "MSET x 1 y 2", want: Drop, why: WhyKey},
		// moves
		{name: "rename within", f: user, in: "RENAME u:a u:b", want: Apply},
		{name: "rename outside", f: user, in: "RENAME a b", want: Drop, why: WhyKey},
		{name: "rename out of the filter", f: user, in: "RENAME u:a tmp", want: Apply, out: "DEL u:a"},
		{name: "renamenx out of the filter", f: user, in: "RENAMENX u:a tmp", want: Apply, out: "DEL u:a"},
		{name: "rename into the filter", f: user, in: "RENAME tmp:1 u:1", want: Refuse, why: `copy "tmp:1" too`},
		{name: "smove out", f: user, in: "SMOVE u:s x m", want: Apply, out: "SREM u:s m"},
		{name: "smove in", f: user, in: "SMOVE x u:s m", want: Apply, out: "SADD u:s m"},
		{name: "lmove out left", f: user, in: "LMOVE u:l x left RIGHT", want: Apply, out: "LPOP u:l"},
		{name: "lmove out right", f: user, in: "LMOVE u:l x RIGHT LEFT", want: Apply, out: "RPOP u:l"},
		{name: "blmove out", f: user, in: "BLMOVE u:l x LEFT LEFT 0", want: Apply, out: "LPOP u:l"},
		{name: "lmove in", f: user, in: "LMOVE x u:l LEFT RIGHT", want: Refuse, why: "LMOVE"},
		{name: "rpoplpush out", f: user, in: "RPOPLPUSH u:l x", want: Apply, out: "RPOP u:l"},
		{name: "brpoplpush out", f: user, in: "BRPOPLPUSH u:l x 0", want: Apply, out: "RPOP u:l"},
		{name: "rpoplpush in", f: user, in: "RPOPLPUSH x u:l", want: Refuse, why: "destination is copied"},
		{name: "copy out", f: user, in: "COPY u:a x", want: Drop, why: WhyKey},
		{name: "copy in", f: user, in: "COPY x u:a REPLACE", want: Refuse, why: "COPY"},
		{name: "copy within", f: user, in: "COPY u:a u:b", want: Apply},
		{name: "copy to a db not copied", f: db0, in: "COPY a b DB 1", want: Drop, why: WhyKey},
		{name: "copy from a db not copied", f: db0, db: 1, in: "COPY a b DB 0 REPLACE", want: Refuse, why: "COPY"},
		{name: "copy between copied dbs", f: noDB1, db: 0, in: "COPY a b DB 2", want: Apply},
		{name: "move between copied dbs", f: noDB1, in: "MOVE k 2", want: Apply},
		{name: "move out of the copied dbs", f: noDB1, in: "MOVE k 1", want: Apply, out: "DEL k"},
		{name: "move into the copied dbs", f: noDB1, db: 1, in: "MOVE k 0", want: Refuse, why: "copy db 1 too"},
		{name: "move between dbs not copied", f: db0, db: 1, in: "MOVE k 2", want: Drop, why: WhyDB},
		{name: "move of a key not copied", f: user, in: "MOVE k 2", want: Drop, why: WhyKey},
		// stores
		{name: "sunionstore all", f: user, in: "SUNIONSTORE u:d u:a u:b", want: Apply},
		{name: "sunionstore into a key not copied", f: user, in: "SUNIONSTORE tmp u:a u:b", want: Drop, why: WhyKey},
		{name: "sunionstore from a key not copied", f: user, in: "SUNIONSTORE u:d u:a x", want: Refuse, why: `writes "u:d", which is copied, from "x"`},
		{name: "zunionstore dest first", f: user, in: "ZUNIONSTORE tmp 2 u:a u:b", want: Drop, why: WhyKey},
		{name: "zinterstore refused", f: user, in: "ZINTERSTORE u:d 2 u:a x WEIGHTS 1 2", want: Refuse, why: "ZINTERSTORE"},
		{name: "zrangestore", f: user, in: "ZRANGESTORE u:d x 0 -1", want: Refuse, why: "ZRANGESTORE"},
		{name: "geosearchstore out", f: user, in: "GEOSEARCHSTORE x u:g FROMMEMBER m BYRADIUS 1 km", want: Drop, why: WhyKey},
		{name: "bitop dest second argument", f: user, in: "BITOP OR x u:a u:b", want: Drop, why: WhyKey},
		{name: "bitop refused", f: user, in: "BITOP AND u:d u:a x", want: Refuse, why: "BITOP"},
		{name: "pfmerge refused", f: user, in: "PFMERGE u:d x", want: Refuse, why: "PFMERGE"},
		{name: "sort store dest last: out", f: user, in: "SORT u:l ALPHA STORE x", want: Drop, why: WhyKey},
		{name: "sort store dest last: in", f: user, in: "SORT x STORE u:d", want: Refuse, why: `writes "u:d"`},
		{name: "sort without store", f: user, in: "SORT u:l ALPHA", want: Apply},
		{name: "georadius store out", f: user, in: "GEORADIUS u:g 0 0 1 km STORE x", want: Drop, why: WhyKey},
		{name: "georadius store in", f: user, in: "GEORADIUS x 0 0 1 km STORE u:d", want: Refuse, why: "GEORADIUS"},
		// together
		{name: "eval mixed", f: user, in: "EVAL s 2 u:a x", want: Refuse, why: `EVAL on "u:a", which is copied, and "x", which is not`},
		{name: "eval all copied", f: user, in: "EVAL s 2 u:a u:b", want: Apply},
		{name: "fcall none", f: user, in: "FCALL f 1 x", want: Drop, why: WhyKey},
		{name: "lmpop mixed", f: user, in: "LMPOP 2 x u:a LEFT", want: Refuse, why: "LMPOP"},
		{name: "blpop mixed", f: user, in: "BLPOP u:a x 0", want: Refuse, why: `block_commands = ["blpop"]`},
		{name: "xreadgroup mixed", f: user, in: "XREADGROUP GROUP g c STREAMS u:a x > >", want: Refuse, why: "XREADGROUP"},
		{name: "migrate keys mixed", f: user, in: `MIGRATE h 1 "" 0 10 KEYS u:a x`, want: Refuse, why: "MIGRATE"},
	})
}

func TestTypesInTheStream(t *testing.T) {
	strs := conf.Filter{BlockTypes: []string{"string"}}
	zsets := conf.Filter{Types: []string{"zset"}}
	lists := conf.Filter{Types: []string{"list"}, BlockTypes: []string{"set"}}
	// RESTORE payloads: the first byte is the RDB type (0 string, 16 hash listpack).
	strPayload, hashPayload := "\x00abc", "\x10abc"
	runCases(t, []rewriteCase{
		{name: "typed allowed", f: hashes, in: "HSET h f v", want: Apply},
		{name: "typed not copied", f: hashes, in: "LPUSH l a", want: Drop, why: WhyType},
		{name: "xgroup typed", f: hashes, in: "XGROUP SETID s g 0", want: Drop, why: WhyType},
		{name: "set overwrites any type", f: hashes, in: "SET h v", want: Apply, out: "DEL h"},
		{name: "setex overwrites", f: strs, in: "SETEX h 10 v", want: Apply, out: "DEL h"},
		{name: "set overwrite with key rules", f: conf.Filter{Types: []string{"hash"}, Prefixes: []string{"u:"}}, in: "SET x v", want: Drop, why: WhyType},
		{name: "mset overwrites all", f: conf.Filter{Types: []string{"hash"}, Prefixes: []string{"u:"}}, in: "MSET u:a 1 x 2 u:b 3", want: Apply, out: "DEL u:a u:b"},
		{name: "msetnx cannot overwrite", f: hashes, in: "MSETNX a 1 b 2", want: Drop, why: WhyType},
		{name: "incr does not overwrite", f: hashes, in: "INCR n", want: Drop, why: WhyType},
		{name: "sunionstore overwrites", f: hashes, in: "SUNIONSTORE d a b", want: Apply, out: "DEL d"},
		{name: "sort store overwrites its last key", f: hashes, in: "SORT a STORE d", want: Apply, out: "DEL d"},
		{name: "sort read passes", f: hashes, in: "SORT a", want: Apply},
		{name: "generic passes", f: hashes, in: "EXPIRE k 10", want: Apply},
		{name: "rename passes", f: hashes, in: "RENAME a b", want: Apply},
		{name: "zunionstore may read sets", f: zsets, in: "ZUNIONSTORE d 2 a b", want: Refuse, why: "may read set keys"},
		{name: "zrangestore reads zsets only", f: zsets, in: "ZRANGESTORE d a 0 -1", want: Apply},
		{name: "sort store reads sets", f: lists, in: "SORT a STORE d", want: Refuse, why: "set/zset"},
		{name: "sort store list only", f: conf.Filter{BlockTypes: []string{"hash"}}, in: "SORT a STORE d", want: Apply},
		{name: "restore of a type not copied", f: hashes, in: "RESTORE k 0 " + strPayload, want: Drop, why: WhyType},
		{name: "restore replace of a type not copied", f: hashes, in: "RESTORE k 0 " + strPayload + " REPLACE ABSTTL", want: Apply, out: "DEL k"},
		{name: "restore of a copied type", f: hashes, in: "RESTORE k 0 " + hashPayload + " REPLACE", want: Apply},
		{name: "module command, modules not copied", f: hashes, in: "JSON.SET k $ 1", want: Drop, why: WhyType},
		{name: "module command, modules copied", f: conf.Filter{BlockTypes: []string{"stream"}}, in: "JSON.SET k $ 1", want: Apply},
		{name: "keyless passes", f: hashes, in: "FLUSHALL", want: Apply},
	})
}

func TestUnparsedCommands(t *testing.T) {
	runCases(t, []rewriteCase{
		{name: "unknown with key rules", f: user, in: "JSON.SET u:a $ 1", want: Refuse, why: `block_commands = ["json.set"]`},
		{name: "unknown with db rules, copied db", f: db0, in: "JSON.SET k $ 1", want: Apply},
		{name: "unknown with db rules, other db", f: db0, db: 3, in: "JSON.SET k $ 1", want: Drop, why: WhyDB},
		{name: "malformed with key rules", f: user, in: "SET u:a", want: Refuse, why: "wrong number of arguments"},
		{name: "malformed without key rules", f: db0, in: "SET k", want: Apply},
	})
}

// TestLearnedCommand: a module command the source describes with key specs
// is filtered by its keys and its type (module), not refused as unknown.
func TestLearnedCommand(t *testing.T) {
	reply := []any{[]any{"mod.set", int64(-3), []any{"write", "module"}, int64(1), int64(1), int64(1), []any{}, []any{},
		[]any{[]any{"flags", []any{"RW"}, "begin_search", []any{"type", "index", "spec", []any{"index", int64(1)}},
			"find_keys", []any{"type", "range", "spec", []any{"lastkey", int64(0), "keystep", int64(1), "limit", int64(0)}}}}}}
	tab, err := router.Learn(router.Builtin(), reply)
	if err != nil {
		t.Fatal(err)
	}
	user := mustNew(t, conf.Filter{Prefixes: []string{"u:"}})
	noMod := mustNew(t, conf.Filter{BlockTypes: []string{"module"}})
	for _, tc := range []struct {
		f    *Filter
		in   string
		want Decision
		why  string
	}{
		{user, "MOD.SET u:1 v", Apply, ""},
		{user, "MOD.SET x:1 v", Drop, WhyKey},
		{noMod, "MOD.SET u:1 v", Drop, WhyType},
	} {
		c, err := tab.Parse(cmd(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		out, d, why := tc.f.RewriteCommand(0, &c)
		if d != tc.want || why != tc.why || d == Apply && out != &c {
			t.Errorf("%s: %v %q", tc.in, d, why)
		}
	}
	// Without its key specs the same command is unknown: refused with key rules.
	if _, d, _ := user.Rewrite(0, cmd("MOD.SET u:1 v")); d != Refuse {
		t.Errorf("unknown MOD.SET with key rules: %v", d)
	}
}

// A rewrite is a new parsed command; anything else is the command itself.
func TestRewriteCommandValue(t *testing.T) {
	f := mustNew(t, conf.Filter{Prefixes: []string{"u:"}})
	c, _ := router.Parse(cmd("DEL u:a x u:b"))
	out, d, _ := f.RewriteCommand(0, &c)
	if d != Apply || out == &c || out.Name != "DEL" || len(out.Keys) != 2 || str(out.Args) != "DEL u:a u:b" {
		t.Fatalf("DEL u:a x u:b: %v %+v", d, out)
	}
	c, _ = router.Parse(cmd("RENAME u:a x"))
	if out, d, _ := f.RewriteCommand(0, &c); d != Apply || str(out.Args) != "DEL u:a" || out.Kind != router.KeyedSplittable {
		t.Fatalf("RENAME u:a x: %v %+v", d, out)
	}
	c, _ = router.Parse(cmd("SET u:a v"))
	if out, d, _ := f.RewriteCommand(0, &c); d != Apply || out != &c {
		t.Fatalf("SET u:a v: %v %+v", d, out)
	}
}

func TestDecisionString(t *testing.T) {
	if Apply.String() != "apply" || Drop.String() != "drop" || Refuse.String() != "refuse" || Decision(9).String() != "Decision(9)" {
		t.Fatal("Decision.String")
	}
}

func TestFunctions(t *testing.T) {
	for _, c := range []struct {
		f    conf.Filter
		want bool
	}{
		{conf.Filter{Prefixes: []string{"a"}}, true},
		{conf.Filter{BlockCommands: []string{"function"}}, false},
		{conf.Filter{BlockCommands: []string{"function|load"}}, false},
		{conf.Filter{BlockCommands: []string{"function|delete"}}, true},
		{conf.Filter{Commands: []string{"set"}}, false},
		{conf.Filter{Commands: []string{"set", "function|load"}}, true},
	} {
		if got := mustNew(t, c.f).Functions(); got != c.want {
			t.Errorf("%+v: Functions() = %v", c.f, got)
		}
	}
}

// The applier calls Rewrite for every command: it must not allocate unless
// it rewrites or refuses (or router.Parse does: ZUNIONSTORE-like commands,
// whose destination comes before numkeys).
func TestRewriteAllocs(t *testing.T) {
	full := mustNew(t, conf.Filter{
		DBs: []int{0, 1}, Prefixes: []string{"u:", "o:"}, BlockRegex: []string{`:tmp$`},
		BlockTypes: []string{"stream"}, BlockCommands: []string{"flushall", "function|flush"},
	})
	var none *Filter
	for _, c := range []struct {
		f  *Filter
		in string
	}{
		{none, "SET u:1 v"},
		{full, "SET u:1 v"},
		{full, "set u:1 v PXAT 1700000000000"},
		{full, "SET x:1 v"},           // dropped: key
		{full, "XADD u:s * f v"},      // dropped: type
		{full, "FLUSHALL"},            // dropped: command
		{full, "FUNCTION DELETE lib"}, // keyless
		{full, "DEL u:a u:b u:c"},     // all copied
		{full, "MSET x 1 y 2"},        // none copied
		{full, "EXPIRE u:1 10"},
	} {
		a := cmd(c.in)
		n := testing.AllocsPerRun(100, func() { c.f.Rewrite(0, a) })
		if n != 0 {
			t.Errorf("%s: %v allocations", c.in, n)
		}
	}
}

func BenchmarkRewrite(b *testing.B) {
	f, _ := New(conf.Filter{Prefixes: []string{"u:", "o:"}, BlockRegex: []string{`:tmp$`}, BlockCommands: []string{"flushall"}})
	for _, s := range []string{"SET u:1000 value PXAT 1700000000000", "HSET x:1 f v", "DEL u:a x u:b"} {
		a := cmd(s)
		b.Run(string(a[0]), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				f.Rewrite(0, a)
			}
		})
	}
}
