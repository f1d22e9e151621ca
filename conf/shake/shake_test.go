package shake

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/filter"
)

// translate translates src and loads the result as ferry would (with the
// password variables set), failing the test on any error.
func translate(t *testing.T, src string) (Result, conf.Job) {
	t.Helper()
	t.Setenv("FERRY_SOURCE_PASSWORD", "pw1")
	t.Setenv("FERRY_TARGET_PASSWORD", "pw2")
	res, err := Translate([]byte(src), "shake.toml")
	if err != nil {
		t.Fatalf("Translate: %v", err)
	}
	j, err := conf.ParseJob(res.TOML, "out.toml")
	if err != nil {
		t.Fatalf("the translation does not load: %v\n%s", err, res.TOML)
	}
	return res, j
}

func noteKeys(res Result) []string {
	var ks []string
	for _, n := range res.Notes {
		ks = append(ks, n.Key)
	}
	return ks
}

func TestSyncReader(t *testing.T) {
	res, j := translate(t, `
[sync_reader]
cluster = true
address = "10.0.0.1:6379"
username = "repl"
password = "s3cret-Pa55"
prefer_replica = true
sync_aof = false

[redis_writer]
address = "10.0.0.2:6379"
password = "${SHAKE_DST_PASSWORD:-}"
`)
	if strings.Contains(string(res.TOML), "s3cret-Pa55") {
		t.Fatalf("the password was copied:\n%s", res.TOML)
	}
	if j.Name != "shake" || j.Source.Addr != "redis://10.0.0.1:6379" || j.Source.Username != "repl" ||
		j.Source.Password != "pw1" || j.Source.Reader != "psync" || j.Source.ReadFrom != "replica" {
		t.Errorf("source: %+v (job %q)", j.Source, j.Name)
	}
	if j.Target.Addr != "redis://10.0.0.2:6379" || !strings.Contains(string(res.TOML), `password = "${SHAKE_DST_PASSWORD:-}"`) {
		t.Errorf("target: %+v\n%s", j.Target, res.TOML)
	}
	want := []string{"sync_reader.password", "sync_reader.sync_aof"}
	if got := noteKeys(res); !slices.Equal(got, want) {
		t.Errorf("notes %q, want %q", got, want)
	}
}

func TestScanReaderAndAdvanced(t *testing.T) {
	res, j := translate(t, `
[scan_reader]
address = "src.example.com:6380"
tls = true
dbs = [0, 2, 3]
ksn = true
count = 100
prefer_replica = true

[redis_writer]
address = "[::1]:6390"

[filter]
allow_db = [2, 3, 4]
block_db = [3]

[advanced]
pprof_port = 6060
log_level = "debug"
rdb_restore_command_behavior = "skip"
target_redis_proto_max_bulk_len = 0
target_redis_client_max_querybuf_len = 1048576
empty_db_before_sync = false
`)
	if j.Source.Addr != "rediss://src.example.com:6380" || j.Source.Reader != "scan" || j.Source.ReadFrom != "replica" {
		t.Errorf("source %+v", j.Source)
	}
	if !slices.Equal(j.Filter.DBs, []int{2}) || len(j.Filter.BlockDBs) != 0 {
		t.Errorf("dbs %v, block_dbs %v, want [2] and none", j.Filter.DBs, j.Filter.BlockDBs)
	}
	if j.StatusAddr != "127.0.0.1:6060" || !j.Pprof || j.LogLevel != "debug" {
		t.Errorf("status %q pprof %v log %q", j.StatusAddr, j.Pprof, j.LogLevel)
	}
	if j.TargetNonempty != "refuse" || j.Restore != "never" {
		t.Errorf("target_nonempty %q restore %q", j.TargetNonempty, j.Restore)
	}
	if j.MaxInflightBytes != 512*1024 || j.BatchMaxBytes != 512*1024 {
		t.Errorf("max_inflight_bytes %d batch_max_bytes %d, want half the query buffer", j.MaxInflightBytes, j.BatchMaxBytes)
	}
	want := []string{"scan_reader.tls", "scan_reader.count", "advanced.rdb_restore_command_behavior"}
	if got := noteKeys(res); !slices.Equal(got, want) {
		t.Errorf("notes %q, want %q", got, want)
	}
}

func TestFileReaders(t *testing.T) {
	_, j := translate(t, `
[rdb_reader]
filepath = "/backup/dump.rdb"
[redis_writer]
address = "127.0.0.1:6379"
[advanced]
empty_db_before_sync = true
rdb_restore_command_behavior = "panic"
status_port = 0
`)
	if j.RDB != "/backup/dump.rdb" || j.Source.IsSet() || j.TargetNonempty != "flush" || j.StatusAddr != "" {
		t.Errorf("rdb %q source %v target_nonempty %q status %q", j.RDB, j.Source.IsSet(), j.TargetNonempty, j.StatusAddr)
	}
	res, j := translate(t, `
[aof_reader]
filepath = "/data/appendonlydir/appendonly.aof.manifest"
timestamp = 1700000000
[sync_reader]
address = "127.0.0.1:6000"
[redis_writer]
address = "127.0.0.1:6379"
`)
	// RedisShake takes sync_reader first when there are several.
	if j.AOF != "" || j.Source.Addr != "redis://127.0.0.1:6000" {
		t.Errorf("aof %q source %q: want the sync_reader", j.AOF, j.Source.Addr)
	}
	if got := noteKeys(res); !slices.Equal(got, []string{"aof_reader"}) {
		t.Errorf("notes %q", got)
	}
	res, j = translate(t, `
[aof_reader]
filepath = "/data/appendonlydir/appendonly.aof.manifest"
timestamp = 1700000000
[redis_writer]
address = "127.0.0.1:6379"
`)
	if j.AOF != "/data/appendonlydir/appendonly.aof.manifest" {
		t.Errorf("aof %q", j.AOF)
	}
	if got := noteKeys(res); !slices.Equal(got, []string{"aof_reader.timestamp"}) {
		t.Errorf("notes %q", got)
	}
}

// TestKeyFilterSemantics: for every key, the translated ferry filter copies
// it exactly when RedisShake's rules would (any allow rule, no block rule).
func TestKeyFilterSemantics(t *testing.T) {
	type rules struct{ keys, prefix, suffix, regex, bkeys, bprefix, bsuffix, bregex []string }
	shakeAllows := func(r rules, k string) bool {
		any := func(l []string, f func(string) bool) bool { return slices.ContainsFunc(l, f) }
		eq := func(x string) bool { return k == x }
		pre := func(x string) bool { return strings.HasPrefix(k, x) }
		suf := func(x string) bool { return strings.HasSuffix(k, x) }
		re := func(x string) bool { return regexp.MustCompile(x).MatchString(k) }
		if any(r.bkeys, eq) || any(r.bprefix, pre) || any(r.bsuffix, suf) || any(r.bregex, re) {
			return false
		}
		if len(r.keys)+len(r.prefix)+len(r.suffix)+len(r.regex) == 0 {
			return true
		}
		return any(r.keys, eq) || any(r.prefix, pre) || any(r.suffix, suf) || any(r.regex, re)
	}
	list := func(l []string) string {
		q := make([]string, len(l))
		for i, s := range l {
			q[i] = quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	keys := []string{"user:1", "user:admin", "order:7", "a.b:active", "x:active", "x:old", "tmp:1", "cache:12", "cache:x",
		"a$", "price.$", "$", "$$", "x$", "{", "(x)", "user", "", "u*er:1", "x:active:old", "a+b"}
	for i, r := range []rules{
		{prefix: []string{"user:", "order:"}},
		{suffix: []string{":active", "$"}},
		{keys: []string{"a$", "(x)", "$"}, prefix: []string{"user:"}, bkeys: []string{"user:admin"}},
		{regex: []string{`^cache:\d+$`}, bsuffix: []string{":old"}},
		{prefix: []string{"u*er", "a.b"}, suffix: []string{":active"}, regex: []string{`^a\+b$`}, bprefix: []string{"tmp:"}, bregex: []string{"x"}},
		{bkeys: []string{"price.$"}, bprefix: []string{"cache:"}},
		{suffix: []string{"$"}, bprefix: []string{"x$"}},
	} {
		src := "[sync_reader]\naddress = \"127.0.0.1:1\"\n[redis_writer]\naddress = \"127.0.0.1:2\"\n[filter]\n" +
			"allow_keys = " + list(r.keys) + "\nallow_key_prefix = " + list(r.prefix) + "\nallow_key_suffix = " + list(r.suffix) +
			"\nallow_key_regex = " + list(r.regex) + "\nblock_keys = " + list(r.bkeys) + "\nblock_key_prefix = " + list(r.bprefix) +
			"\nblock_key_suffix = " + list(r.bsuffix) + "\nblock_key_regex = " + list(r.bregex) + "\n"
		_, j := translate(t, src)
		if err := j.Validate(); err != nil {
			t.Fatalf("rules %d: %v", i, err)
		}
		f, err := filter.New(j.Filter)
		if err != nil {
			t.Fatalf("rules %d: %v", i, err)
		}
		for _, k := range keys {
			if got, want := f.Key(0, []byte(k)), shakeAllows(r, k); got != want {
				t.Errorf("rules %d (%+v), key %q: ferry copies %v, RedisShake %v (filter %+v)", i, r, k, got, want, j.Filter)
			}
		}
	}
}

func TestCommandsAndGroups(t *testing.T) {
	res, j := translate(t, `
[sync_reader]
address = "127.0.0.1:1"
[redis_writer]
address = "127.0.0.1:2"
[filter]
allow_command = ["SET", "DEL", "XGROUP-CREATE", "not a command!"]
block_command = ["FLUSHALL"]
allow_command_group = ["STRING", "SORTED_SET", "GEO"]
block_command_group = ["SCRIPTING", "HASH"]
function = "shake.call(DB, ARGV)"
`)
	if !slices.Equal(j.Filter.Commands, []string{"set", "del", "xgroup|create"}) {
		t.Errorf("commands %q", j.Filter.Commands)
	}
	if !slices.Contains(j.Filter.BlockCommands, "flushall") || !slices.Contains(j.Filter.BlockCommands, "evalsha") || !slices.Contains(j.Filter.BlockCommands, "function") {
		t.Errorf("block_commands %q", j.Filter.BlockCommands)
	}
	if !slices.Equal(j.Filter.Types, []string{"string", "zset"}) || !slices.Equal(j.Filter.BlockTypes, []string{"hash"}) {
		t.Errorf("types %q block_types %q", j.Filter.Types, j.Filter.BlockTypes)
	}
	want := []string{"filter.allow_command", "filter.allow_command", "filter.allow_command_group", "filter.function"}
	if got := noteKeys(res); !slices.Equal(got, want) {
		t.Errorf("notes %q, want %q", got, want)
	}
}

// TestEnvReferences: strings keep RedisShake's environment references
// (envsubst: $NAME, ${NAME}, ${NAME:-x}; $$ is a $) as ferry references, and
// ferry reads back the value RedisShake used.
func TestEnvReferences(t *testing.T) {
	t.Setenv("HOST", "h")
	for _, c := range []struct{ in, out, value string }{
		{"plain", "plain", "plain"},
		{"$HOST:6379", "${HOST}:6379", "h:6379"},
		{"${HOST}:${PORT:-6379}", "${HOST}:${PORT:-6379}", "h:6379"},
		{"a$$b", "a$b", "a$b"},
		{"a$${b}", "a$${b}", "a${b}"},
		{"^x$", "^x$", "^x$"},
		{"$1", "$1", "$1"},
		{"${open", "$${open", "${open"},
	} {
		got := ferryString(c.in)
		v, err := conf.Expand(got)
		if got != c.out || err != nil || v != c.value {
			t.Errorf("ferryString(%q) = %q (ferry reads %q, %v), want %q (%q)", c.in, got, v, err, c.out, c.value)
		}
	}
	if got, err := conf.Expand(quoteRegex("^", "a${HOST}.$", "$")); err != nil || got != `^ah\.\$$` {
		t.Errorf("quoteRegex expanded %q, %v", got, err)
	}
}

func TestInvalidInput(t *testing.T) {
	for _, c := range []struct{ name, src, want string }{
		{"empty", "", "no reader section"},
		{"garbage", "\x00\x01 not toml at all ===", "not TOML"},
		{"v2 config", "conf.version = 1\nsource.type = standalone\n", "not TOML"},
		{"no writer", "[sync_reader]\naddress = \"127.0.0.1:1\"\n", "no [redis_writer]"},
		{"ferry file", "[source]\naddr = \"redis://a:1\"\n[target]\naddr = \"redis://b:1\"\n", "ferry job file"},
		{"no address", "[sync_reader]\ncluster = true\n[redis_writer]\naddress = \"b:1\"\n", "sync_reader.address: required"},
		{"bad type", "[sync_reader]\naddress = \"a:1\"\ncluster = \"maybe\"\n[redis_writer]\naddress = \"b:1\"\n", "cluster: must be true or false"},
		{"bad address", "[sync_reader]\naddress = \"a:1:2:x\"\n[redis_writer]\naddress = \"b:1\"\n", "sync_reader.address"},
		{"bad regex", "[sync_reader]\naddress = \"a:1\"\n[redis_writer]\naddress = \"b:1\"\n[filter]\nallow_key_regex = [\"(\"]\n", "not a valid regular expression"},
		{"unquoted password", "[sync_reader]\naddress = \"a:1\"\npassword = hunter2-xyz\n[redis_writer]\naddress = \"b:1\"\n", "not shown"},
		{"all blocked", "[sync_reader]\naddress = \"a:1\"\n[redis_writer]\naddress = \"b:1\"\n[filter]\nallow_db = [1]\nblock_db = [1]\n", "copy nothing"},
	} {
		_, err := Translate([]byte(c.src), "shake.toml")
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("%s: error %v, want an *Error", c.name, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) || strings.Contains(msg, "\n") || strings.Contains(msg, "hunter2") {
			t.Errorf("%s: %q, want one line with %q and no password", c.name, msg, c.want)
		}
	}
}

// TestUnknownKeys: keys RedisShake does not know are noted (with a
// suggestion for a typo) and never break the job file, whatever their name.
func TestUnknownKeys(t *testing.T) {
	res, _ := translate(t, `
[sync_reader]
adress = "x"
address = "127.0.0.1:1"
"odd\nkey" = 1
[redis_writer]
address = "127.0.0.1:2"
[advanced]
log_file = "a\nb.log"
[extra]
x = 1
`)
	var msgs []string
	for _, n := range res.Notes {
		msgs = append(msgs, n.String())
	}
	all := strings.Join(msgs, "\n")
	for _, want := range []string{"extra: not a RedisShake v4 section", "sync_reader.adress: not a RedisShake v4 key: ignored (did you mean address?)", "advanced.log_file"} {
		if !strings.Contains(all, want) {
			t.Errorf("notes do not say %q:\n%s", want, all)
		}
	}
}
