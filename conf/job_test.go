package conf

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefault(t *testing.T) {
	j := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"job", j.Name, "default"},
		{"data_dir", j.DataDir, DefaultDataDir()},
		{"rdb", j.RDB, ""},
		{"source.read_from", j.Source.ReadFrom, ReadFromMaster},
		{"source.dial_timeout", j.Source.DialTimeout, 5 * time.Second},
		{"target.dial_timeout", j.Target.DialTimeout, 5 * time.Second},
		{"target_nonempty", j.TargetNonempty, NonemptyRefuse},
		{"restore", j.Restore, RestoreAuto},
		{"fence", j.Fence, FenceMulti},
		{"on_error", j.OnError, OnErrorStop},
		{"keepalive_interval", j.KeepaliveInterval, 30 * time.Second},
		{"max_conn_age", j.MaxConnAge, time.Duration(0)},
		{"batch_max_ops", j.BatchMaxOps, 512},
		{"batch_max_bytes", j.BatchMaxBytes, int64(1 << 20)},
		{"max_inflight_bytes", j.MaxInflightBytes, int64(16 << 20)},
		{"spool_memory", j.SpoolMemory, int64(64 << 20)},
		{"spool_max_disk", j.SpoolMaxDisk, int64(0)},
		{"status_addr", j.StatusAddr, "127.0.0.1:9121"},
		{"log_level", j.LogLevel, "info"},
		{"log_format", j.LogFormat, "auto"},
		{"cpu_scheduling", j.CPUScheduling, CPUAuto},
		{"progress_interval", j.ProgressInterval, 5 * time.Second},
		{"max_ops_per_second", j.MaxOpsPerSecond, 0},
		{"max_bytes_per_second", j.MaxBytesPerSecond, int64(0)},
		{"cutover_pause_max", j.CutoverPauseMax, 30 * time.Second},
		{"cutover_hook", j.CutoverHook, ""},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	// Default alone lacks a source and a target.
	wantErr(t, j.Validate(), `config: source: required`)
	j.Source.Addr = "redis://a:1"
	wantErr(t, j.Validate(), `config: target: required`)
	j.Target.Addr = "b"
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if j.JobDir() != filepath.Join(DefaultDataDir(), "default") {
		t.Errorf("JobDir = %q", j.JobDir())
	}
}

// An empty file is the defaults.
func TestEmptyFileIsDefault(t *testing.T) {
	j, err := ParseJob(nil, "empty.toml")
	if err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.Source.ReadFrom = "master"
	if !reflect.DeepEqual(j, d) {
		t.Fatalf("empty file gave\n%#v\nwant\n%#v", j, d)
	}
}

func TestFields(t *testing.T) {
	cases := []struct {
		name  string
		toml  string // after base
		check func(j Job) any
		want  any
	}{
		{"name", `name = "orders.eu-1_b"`, func(j Job) any { return j.Name }, "orders.eu-1_b"},
		{"name 64 chars", `name = "` + strings.Repeat("a", 64) + `"`, func(j Job) any { return len(j.Name) }, 64},
		{"data_dir", `data_dir = "/var/lib/ferry"`, func(j Job) any { return j.JobDir() }, "/var/lib/ferry/default"},
		{"target_nonempty", `target_nonempty = "flush"`, func(j Job) any { return j.TargetNonempty }, NonemptyFlush},
		{"target_nonempty case", `target_nonempty = "Overwrite"`, func(j Job) any { return j.TargetNonempty }, NonemptyOverwrite},
		{"restore", `restore = "never"`, func(j Job) any { return j.Restore }, RestoreNever},
		{"restore always", `restore = "ALWAYS"`, func(j Job) any { return j.Restore }, RestoreAlways},
		{"fence", `fence = "off"`, func(j Job) any { return j.Fence }, FenceOff},
		{"on_error", `on_error = "skip"`, func(j Job) any { return j.OnError }, OnErrorSkip},
		{"keepalive_interval", `keepalive_interval = "1m30s"`, func(j Job) any { return j.KeepaliveInterval }, 90 * time.Second},
		{"keepalive_interval int", `keepalive_interval = 10`, func(j Job) any { return j.KeepaliveInterval }, 10 * time.Second},
		{"keepalive_interval float", `keepalive_interval = 0.5`, func(j Job) any { return j.KeepaliveInterval }, 500 * time.Millisecond},
		{"keepalive_interval numeric string", `keepalive_interval = "15"`, func(j Job) any { return j.KeepaliveInterval }, 15 * time.Second},
		{"max_conn_age", `max_conn_age = "2h"`, func(j Job) any { return j.MaxConnAge }, 2 * time.Hour},
		{"max_conn_age 0", `max_conn_age = 0`, func(j Job) any { return j.MaxConnAge }, time.Duration(0)},
		{"db_map", `db_map = { "1" = 0, "2" = 0, "15" = 3 }`, func(j Job) any { return j.DBMap }, map[int]int{1: 0, 2: 0, 15: 3}},
		{"db_map string value", `db_map = { "1" = "4" }`, func(j Job) any { return j.DBMap }, map[int]int{1: 4}},
		{"db_map empty", `db_map = {}`, func(j Job) any { return len(j.DBMap) }, 0},
		{"batch_max_ops", `batch_max_ops = 100`, func(j Job) any { return j.BatchMaxOps }, 100},
		{"batch_max_ops string", `batch_max_ops = "64"`, func(j Job) any { return j.BatchMaxOps }, 64},
		{"batch_max_bytes", `batch_max_bytes = "512KiB"`, func(j Job) any { return j.BatchMaxBytes }, int64(512 * 1024)},
		{"batch_max_bytes int", `batch_max_bytes = 1000`, func(j Job) any { return j.BatchMaxBytes }, int64(1000)},
		{"batch_max_bytes KB", `batch_max_bytes = "2KB"`, func(j Job) any { return j.BatchMaxBytes }, int64(2000)},
		{"max_inflight_bytes", `max_inflight_bytes = "1GB"`, func(j Job) any { return j.MaxInflightBytes }, int64(1e9)},
		{"max_inflight_bytes = batch", "batch_max_bytes = \"4MiB\"\nmax_inflight_bytes = \"4mib\"", func(j Job) any { return j.MaxInflightBytes }, 4 * MiB},
		{"spool_memory", `spool_memory = "1.5GiB"`, func(j Job) any { return j.SpoolMemory }, int64(1.5 * float64(GiB))},
		{"spool_max_disk", `spool_max_disk = "10 GiB"`, func(j Job) any { return j.SpoolMaxDisk }, 10 * GiB},
		{"spool_max_disk 0", `spool_max_disk = 0`, func(j Job) any { return j.SpoolMaxDisk }, int64(0)},
		{"status_addr", `status_addr = ":9000"`, func(j Job) any { return j.StatusAddr }, ":9000"},
		{"status_addr ipv6", `status_addr = "[::1]:9000"`, func(j Job) any { return j.StatusAddr }, "[::1]:9000"},
		{"status_addr off", `status_addr = "off"`, func(j Job) any { return j.StatusAddr }, ""},
		{"status_addr OFF", `status_addr = "OFF"`, func(j Job) any { return j.StatusAddr }, ""},
		{"status_addr empty", `status_addr = ""`, func(j Job) any { return j.StatusAddr }, ""},
		{"log_level", `log_level = "debug"`, func(j Job) any { return j.LogLevel }, "debug"},
		{"log_level warn", `log_level = "WARN"`, func(j Job) any { return j.LogLevel }, "warn"},
		{"log_format", `log_format = "json"`, func(j Job) any { return j.LogFormat }, "json"},
		{"log_format console", `log_format = "console"`, func(j Job) any { return j.LogFormat }, "console"},
		{"cpu_scheduling", `cpu_scheduling = "Normal"`, func(j Job) any { return j.CPUScheduling }, CPUNormal},
		{"progress_interval", `progress_interval = "1s"`, func(j Job) any { return j.ProgressInterval }, time.Second},
		{"progress_interval off", `progress_interval = "0s"`, func(j Job) any { return j.ProgressInterval }, time.Duration(0)},
		{"max_ops_per_second", `max_ops_per_second = 10000`, func(j Job) any { return j.MaxOpsPerSecond }, 10000},
		{"max_bytes_per_second", `max_bytes_per_second = "10MB"`, func(j Job) any { return j.MaxBytesPerSecond }, int64(10e6)},
		{"cutover_pause_max", `cutover_pause_max = "2m"`, func(j Job) any { return j.CutoverPauseMax }, 2 * time.Minute},
		{"cutover_hook", `cutover_hook = "/usr/local/bin/switch --to new"`, func(j Job) any { return j.CutoverHook }, "/usr/local/bin/switch --to new"},
		{"filter dbs", "[filter]\ndbs = [0, 3]\nblock_dbs = [5]", func(j Job) any { return [][]int{j.Filter.DBs, j.Filter.BlockDBs} }, [][]int{{0, 3}, {5}}},
		{"filter dbs strings", "[filter]\ndbs = [\"1\"]", func(j Job) any { return j.Filter.DBs }, []int{1}},
		{"filter prefixes", "[filter]\nprefixes = [\"user:\", \"order:\"]\nblock_prefixes = [\"tmp:\"]", func(j Job) any { return [][]string{j.Filter.Prefixes, j.Filter.BlockPrefixes} }, [][]string{{"user:", "order:"}, {"tmp:"}}},
		{"filter regex", "[filter]\nregex = ['^user:\\d+$']\nblock_regex = ['lock$']", func(j Job) any { return [][]string{j.Filter.Regex, j.Filter.BlockRegex} }, [][]string{{`^user:\d+$`}, {"lock$"}}},
		{"filter types", "[filter]\ntypes = [\"String\", \"zset\"]\nblock_types = [\"STREAM\", \"module\"]", func(j Job) any { return [][]string{j.Filter.Types, j.Filter.BlockTypes} }, [][]string{{"string", "zset"}, {"stream", "module"}}},
		{"filter commands", "[filter]\ncommands = [\"SET\", \"del\"]\nblock_commands = [\"FlushAll\"]", func(j Job) any { return [][]string{j.Filter.Commands, j.Filter.BlockCommands} }, [][]string{{"set", "del"}, {"flushall"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := mustLoad(t, base+c.toml+"\n")
			if got := c.check(j); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %#v, want %#v", got, c.want)
			}
		})
	}
}

func TestEndpointFields(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "from-file\n")
	j := mustLoad(t, `target = "redis://t:6379"
[source]
addr = "redis://10.0.0.1:7000/2"
addrs = ["10.0.0.2:7000", "redis://10.0.0.3", "10.0.0.1:7000"]
username = "repl"
password_file = "`+pwFile+`"
read_from = "replica"
reader = "psync"
scan_big_value = "1MiB"
dial_timeout = "2s"
`)
	s := j.Source
	want := Endpoint{
		Addr:         "redis://10.0.0.1:7000/2",
		Addrs:        []string{"10.0.0.2:7000", "redis://10.0.0.3", "10.0.0.1:7000"},
		Scheme:       "redis",
		Hosts:        []string{"10.0.0.1:7000", "10.0.0.2:7000", "10.0.0.3:6379"},
		DB:           2,
		Username:     "repl",
		Password:     "from-file",
		PasswordFile: pwFile,
		ReadFrom:     "replica",
		Reader:       "psync",
		ScanBigValue: MiB,
		DialTimeout:  2 * time.Second,
	}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("source =\n%#v\nwant\n%#v", s, want) // GoString is redacted; compare fields below
	}

	// Credentials in the address.
	j = mustLoad(t, "source = \"redis://alice:p%40ss@h1\"\ntarget = \"rediss://:tpw@h2:6380\"\n")
	if j.Source.Username != "alice" || j.Source.Password != "p@ss" {
		t.Errorf("source creds = %q/%q", j.Source.Username, j.Source.Password)
	}
	if j.Target.Username != "" || j.Target.Password != "tpw" || !j.Target.TLS.Enabled || !j.Target.TLSOn() {
		t.Errorf("target = %+v", j.Target)
	}
	if j.Target.ReadFrom != "" {
		t.Errorf("target.read_from = %q", j.Target.ReadFrom)
	}

	// Sentinel.
	j = mustLoad(t, `target = "t"
[source]
addr = "sentinel://s1,s2:26380,[fe80::1]/mymaster"
addrs = ["sentinel://s3"]
password = "pw"
sentinel_username = "su"
sentinel_password = "spw"
[source.tls]
enabled = true
server_name = "redis.example"
insecure_skip_verify = true
`)
	s = j.Source
	if s.Scheme != "sentinel" || s.SentinelMaster != "mymaster" ||
		!reflect.DeepEqual(s.Hosts, []string{"s1:26379", "s2:26380", "[fe80::1]:26379", "s3:26379"}) ||
		s.SentinelUsername != "su" || s.SentinelPassword != "spw" || s.Password != "pw" ||
		!s.TLS.Enabled || s.TLS.ServerName != "redis.example" || !s.TLS.InsecureSkipVerify {
		t.Fatalf("sentinel source = %+v", s)
	}
	c, err := s.TLSConfig()
	if err != nil || c == nil || c.ServerName != "redis.example" || !c.InsecureSkipVerify {
		t.Fatalf("TLSConfig = %+v, %v", c, err)
	}
}

func TestPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ content, want string }{
		{"plain", "plain"},
		{"nl\n", "nl"},
		{"crlf\r\n", "crlf"},
		{"two\n\n", "two\n"},
		{"  spaces  \n", "  spaces  "},
		{"dollar$${X}\n", "dollar$${X}"}, // file content is not expanded
	} {
		p := writeFile(t, dir, "pw", c.content)
		j := mustLoad(t, "source = \"redis://s\"\n[target]\naddr = \"redis://x\"\npassword_file = \""+p+"\"\n")
		if j.Target.Password != c.want {
			t.Errorf("content %q: password %q, want %q", c.content, j.Target.Password, c.want)
		}
	}
	_, err := load(t, "source = \"redis://s\"\n[target]\naddr = \"redis://x\"\npassword_file = \""+filepath.Join(dir, "missing")+"\"\n")
	wantErr(t, err, "config: target.password_file: cannot read: open "+filepath.Join(dir, "missing")+": no such file or directory")
	if !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("error %v does not unwrap to a not-exist error", err)
	}
	empty := writeFile(t, dir, "empty", "\n")
	_, err = load(t, "source = \"redis://s\"\n[target]\naddr = \"redis://x\"\npassword_file = \""+empty+"\"\n")
	wantErr(t, err, "config: target.password_file: "+empty+" is empty")
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestBadValues(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "x")
	cases := []struct {
		name string
		toml string // whole file unless it starts with "+", then base + the rest
		want string
	}{
		{"restore", "+restore = \"sometimes\"", `config: restore: "sometimes" is not one of auto, always, never`},
		{"target_nonempty", "+target_nonempty = \"maybe\"", `config: target_nonempty: "maybe" is not one of refuse, overwrite, flush`},
		{"fence", "+fence = \"on\"", `config: fence: "on" is not one of multi, off`},
		{"on_error", "+on_error = \"ignore\"", `config: on_error: "ignore" is not one of stop, skip`},
		{"log_level", "+log_level = \"trace\"", `config: log_level: "trace" is not one of debug, info, warn, error`},
		{"log_format", "+log_format = \"xml\"", `config: log_format: "xml" is not one of auto, console, json`},
		{"cpu_scheduling", "+cpu_scheduling = \"fifo\"", `config: cpu_scheduling: "fifo" is not one of auto, batch, normal`},
		{"restore type", "+restore = 1", `config: restore: must be a string, not an integer (quote it)`},
		{"job name", "+job = \"bad name!\"", `config: job: "bad name!" is not a valid job name (1 to 64 of a-z A-Z 0-9 _ . -, starting with a letter or digit)`},
		{"job name colon", "+job = \"a:b\"", `config: job: "a:b" is not a valid job name`},
		{"job name empty", "+job = \"\"", `config: job: "" is not a valid job name`},
		{"job name long", "+job = \"" + strings.Repeat("x", 65) + "\"", `is not a valid job name`},
		{"data_dir", "+data_dir = \"\"", `config: data_dir: must not be empty`},
		{"keepalive 0", "+keepalive_interval = \"0s\"", `config: keepalive_interval: must be more than 0`},
		{"keepalive negative", "+keepalive_interval = \"-1s\"", `config: keepalive_interval: duration "-1s" must not be negative`},
		{"keepalive negative int", "+keepalive_interval = -3", `config: keepalive_interval: duration "-3" must not be negative`},
		{"keepalive words", "+keepalive_interval = \"soon\"", `config: keepalive_interval: bad duration "soon" (use a Go duration like "500ms", "30s", "1m30s", "2h", or a number of seconds)`},
		{"keepalive bool", "+keepalive_interval = true", `config: keepalive_interval: must be a duration (a string like "30s" or a number of seconds), not a boolean`},
		{"max_conn_age", "+max_conn_age = \"-5m\"", `config: max_conn_age: duration "-5m" must not be negative`},
		{"progress_interval", "+progress_interval = \"5 s\"", `config: progress_interval: bad duration "5 s"`},
		{"cutover_pause_max", "+cutover_pause_max = 0", `config: cutover_pause_max: must be more than 0`},
		{"batch_max_ops 0", "+batch_max_ops = 0", `config: batch_max_ops: must be 1 or more, not 0`},
		{"batch_max_ops words", "+batch_max_ops = \"many\"", `config: batch_max_ops: must be a whole number, not "many"`},
		{"batch_max_ops float", "+batch_max_ops = 1.5", `config: batch_max_ops: must be a whole number, not a float`},
		{"batch_max_ops huge", "+batch_max_ops = 99999999999", `config: batch_max_ops: 99999999999 is too large`},
		{"batch_max_bytes unit", "+batch_max_bytes = \"1XB\"", `config: batch_max_bytes: bad size "1XB" (use a number of bytes or a number with a unit: KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024), e.g. "64MiB")`},
		{"batch_max_bytes single letter", "+batch_max_bytes = \"1M\"", `config: batch_max_bytes: bad size "1M"`},
		{"batch_max_bytes negative", "+batch_max_bytes = -1", `config: batch_max_bytes: must not be negative`},
		{"batch_max_bytes negative string", "+batch_max_bytes = \"-1MiB\"", `config: batch_max_bytes: size "-1MiB" must not be negative`},
		{"batch_max_bytes 0", "+batch_max_bytes = 0", `config: batch_max_bytes: must be more than 0`},
		{"batch_max_bytes float", "+batch_max_bytes = 1.5", `config: batch_max_bytes: must be a size (a number of bytes or a string like "64MiB"), not a float`},
		{"batch_max_bytes overflow", "+batch_max_bytes = \"99999999999TiB\"", `config: batch_max_bytes: size "99999999999TiB" is too large`},
		{"max_inflight < batch", "+batch_max_bytes = \"1MiB\"\nmax_inflight_bytes = \"512KiB\"", `config: max_inflight_bytes: 512KiB is less than batch_max_bytes 1MiB: a batch would never fit`},
		{"spool_memory", "+spool_memory = \"0\"", `config: spool_memory: must be more than 0`},
		{"spool_max_disk", "+spool_max_disk = \"-1GB\"", `config: spool_max_disk: size "-1GB" must not be negative`},
		{"max_bytes_per_second", "+max_bytes_per_second = \"fast\"", `config: max_bytes_per_second: bad size "fast"`},
		{"max_ops_per_second", "+max_ops_per_second = -1", `config: max_ops_per_second: must not be negative (0 = unlimited)`},
		{"status_addr port only", "+status_addr = \"9121\"", `config: status_addr: "9121" is not host:port (e.g. "127.0.0.1:9121" or ":9121"; "" or "off" disables it)`},
		{"status_addr bad port", "+status_addr = \"localhost:99999\"", `config: status_addr: "localhost:99999" is not host:port`},
		{"db_map key", "+db_map = { \"a\" = 0 }", `config: db_map: key "a" is not a database number (0 or more)`},
		{"db_map negative key", "+db_map = { \"-1\" = 0 }", `config: db_map: key "-1" is not a database number (0 or more)`},
		{"db_map value", "+db_map = { \"1\" = -1 }", `config: db_map: target db -1 (for source db 1) is not a database number (0 or more)`},
		{"db_map value type", "+db_map = { \"1\" = \"x\" }", `config: db_map.1: must be a whole number, not "x"`},
		{"db_map twice", "+db_map = { \"1\" = 0, \"01\" = 2 }", `config: db_map: source db 1 is mapped twice`},
		{"db_map type", "+db_map = 5", `config: db_map: must be a table of source db = target db, like { "1" = 0 }, not an integer`},
		{"filter type", "+filter = 1", `config: filter: must be a table ([filter]), not an integer`},
		{"filter dbs", "+[filter]\ndbs = [-1]", `config: filter.dbs: -1 is not a database number (0 or more)`},
		{"filter block_dbs", "+[filter]\nblock_dbs = [-2]", `config: filter.block_dbs: -2 is not a database number (0 or more)`},
		{"filter dbs overlap", "+[filter]\ndbs = [1, 2]\nblock_dbs = [2]", `config: filter.block_dbs: db 2 is both in dbs and in block_dbs`},
		{"filter dbs type", "+[filter]\ndbs = [\"one\"]", `config: filter.dbs[0]: must be a whole number, not "one"`},
		{"filter empty prefix", "+[filter]\nprefixes = [\"a\", \"\"]", `config: filter.prefixes: "" matches every key: leave the list empty instead`},
		{"filter empty block prefix", "+[filter]\nblock_prefixes = [\"\"]", `config: filter.block_prefixes: "" matches every key`},
		{"filter regex", "+[filter]\nregex = [\"(\"]", "config: filter.regex: \"(\" is not a valid regular expression (Go RE2 syntax): error parsing regexp: missing closing ): `(`"},
		{"filter block_regex", "+[filter]\nblock_regex = [\"a**\"]", `config: filter.block_regex: "a**" is not a valid regular expression`},
		{"filter types", "+[filter]\ntypes = [\"blob\"]", `config: filter.types: "blob" is not one of string, list, set, zset, hash, stream, module`},
		{"filter block_types", "+[filter]\nblock_types = [\"json\"]", `config: filter.block_types: "json" is not one of string, list, set, zset, hash, stream, module`},
		{"filter commands", "+[filter]\ncommands = [\"SET X\"]", `config: filter.commands: "SET X" is not a command name`},
		{"filter block_commands", "+[filter]\nblock_commands = [\"\"]", `config: filter.block_commands: "" is not a command name`},
		{"filter list type", "+[filter]\nprefixes = \"user:\"", `config: filter.prefixes: must be an array, not a string`},
		{"filter list item type", "+[filter]\nprefixes = [1]", `config: filter.prefixes[0]: must be a string, not an integer (quote it)`},
		{"read_from", "target = \"t\"\n[source]\naddr = \"s\"\nread_from = \"slave\"", `config: source.read_from: "slave" is not one of master, replica`},
		{"dial_timeout", "target = \"t\"\n[source]\naddr = \"s\"\ndial_timeout = \"0s\"", `config: source.dial_timeout: must be more than 0`},
		{"tls enabled type", "target = \"t\"\n[source]\naddr = \"s\"\n[source.tls]\nenabled = \"yes\"", `config: source.tls.enabled: must be true or false, not "yes"`},
		{"tls type", "target = \"t\"\n[source]\naddr = \"s\"\ntls = true", `config: source.tls: must be a table ([source.tls]), not a boolean`},
		{"source type", "source = 5\ntarget = \"t\"", `config: source: must be an address string (source = "redis://host:6379") or a table ([source]), not an integer`},
		{"source bad scheme", "source = \"http://h:1\"\ntarget = \"t\"", `config: source.addr: "http://h:1": unsupported scheme "http" (use redis://, rediss:// or sentinel://)`},
		{"target bad port", "source = \"s\"\ntarget = \"redis://h:0\"", `config: target.addr: "redis://h:0": bad port "0" (want 1..65535)`},
		{"target bad db", "source = \"s\"\ntarget = \"redis://h/x\"", `config: target.addr: "redis://h/x": bad db "x" (want a database number 0 or more, e.g. /0)`},
		{"addrs", "target = \"t\"\n[source]\naddr = \"rediss://s\"\naddrs = [\"redis://x\"]", `config: source.addrs[0]: "redis://x": scheme redis:// differs from addr's rediss://`},
		{"addrs path", "target = \"t\"\n[source]\naddr = \"s\"\naddrs = [\"x:1/0\"]", `config: source.addrs[0]: "x:1/0": want one host:port, without path or parameters`},
		{"addrs port", "target = \"t\"\n[source]\naddr = \"s\"\naddrs = [\"x:http\"]", `config: source.addrs[0]: "x:http": bad port "http" (want 1..65535)`},
		{"rdb and source", "+rdb = \"dump.rdb\"", `config: rdb: rdb and source exclude each other: import a file or read a live source, not both`},
		{"no source", "target = \"t\"", `config: source: required (or rdb = "path/to/dump.rdb" to import a file)`},
		{"no target", "source = \"s\"", `config: target: required (target = "redis://host:6379")`},
		{"no target rdb", "rdb = \"" + pw + "\"", `config: target: required`},
		{"rdb missing", "rdb = \"" + filepath.Join(dir, "nope.rdb") + "\"\ntarget = \"t\"", `config: rdb: stat ` + filepath.Join(dir, "nope.rdb") + `: no such file or directory`},
		{"rdb dir", "rdb = \"" + dir + "\"\ntarget = \"t\"", `config: rdb: ` + dir + ` is a directory, not an RDB file`},
		{"same host", "source = \"redis://h:6379/0\"\ntarget = \"redis://H/1\"", `config: target: h:6379 is also the source: ferry cannot copy a deployment into itself`},
		{"same host seed", "source = \"redis://a\"\n[target]\naddr = \"b\"\naddrs = [\"a:6379\"]", `config: target: a:6379 is also the source`},
		{"password twice", "target = \"t\"\n[source]\naddr = \"redis://:one@s\"\npassword = \"two\"", `config: source.password: given both in addr and as password (ambiguous): keep one`},
		{"password twice same", "target = \"t\"\n[source]\naddr = \"redis://:one@s\"\npassword = \"one\"", `config: source.password: given both in addr and as password (ambiguous): keep one`},
		{"password and file", "target = \"t\"\n[source]\naddr = \"s\"\npassword = \"two\"\npassword_file = \"" + pw + "\"", `config: source.password: password and password_file are both set (ambiguous): keep one`},
		{"url password and file", "target = \"t\"\n[source]\naddr = \"redis://u:p@s\"\npassword_file = \"" + pw + "\"", `config: source.password_file: addr already has a password (ambiguous): keep one`},
		{"username twice", "target = \"t\"\n[source]\naddr = \"redis://u:p@s\"\nusername = \"v\"", `config: source.username: given both in addr and as username (ambiguous): keep one`},
		{"sentinel creds on redis", "target = \"t\"\n[source]\naddr = \"redis://s\"\nsentinel_password = \"x\"", `config: source.sentinel_password: only for sentinel:// addresses`},
		{"sentinel user on redis", "source = \"s\"\n[target]\naddr = \"redis://t\"\nsentinel_username = \"x\"", `config: target.sentinel_username: only for sentinel:// addresses`},
		{"tls file without tls", "source = \"s\"\n[target]\naddr = \"redis://t\"\n[target.tls]\nca_file = \"" + pw + "\"", `config: target.tls.ca_file: is set but TLS is off (use rediss:// or tls.enabled = true)`},
		{"tls insecure without tls", "source = \"s\"\n[target]\naddr = \"redis://t\"\n[target.tls]\ninsecure_skip_verify = true", `config: target.tls.insecure_skip_verify: is set but TLS is off`},
		{"env unset", "+cutover_hook = \"${FERRY_TEST_UNSET_VAR}\"", `config: cutover_hook: environment variable "FERRY_TEST_UNSET_VAR" is not set (use ${FERRY_TEST_UNSET_VAR:-default} for a default)`},
		{"env unterminated", "+cutover_hook = \"${FERRY_TEST_UNSET_VAR\"", `config: cutover_hook: unterminated ${ (write $$ for a literal $)`},
		{"env bad name", "+cutover_hook = \"${1A}\"", `config: cutover_hook: bad variable reference ${...}: want ${NAME} or ${NAME:-default}, NAME of letters, digits and _`},
		{"env in list", "+[filter]\nprefixes = [\"a\", \"${FERRY_TEST_UNSET_VAR}\"]", `config: filter.prefixes[1]: environment variable "FERRY_TEST_UNSET_VAR" is not set`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := c.toml
			if strings.HasPrefix(text, "+") {
				text = base + text[1:]
			}
			_, err := load(t, text+"\n")
			wantErr(t, err, c.want)
		})
	}
}

// Values wrong on their own are reported by LoadJob already; presence and
// cross-field rules wait for Validate (flags may still supply them).
func TestLoadJobChecksValuesNotPresence(t *testing.T) {
	_, err := ParseJob([]byte("restore = \"sometimes\"\n"), "job.toml")
	wantErr(t, err, `config: restore: "sometimes" is not one of auto, always, never`)
	_, err = ParseJob([]byte("source = \"http://x\"\n"), "job.toml")
	wantErr(t, err, `config: source.addr: "http://x": unsupported scheme "http"`)

	j, err := ParseJob([]byte("log_level = \"debug\"\n"), "job.toml")
	if err != nil {
		t.Fatalf("a file without source and target must load: %v", err)
	}
	j.Source.Addr = "redis://flag-source"
	j.Target.Addr = "redis://flag-target"
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	// The file sets TLS files; a flag turns TLS on later: fine at load.
	if _, err := ParseJob([]byte("[target]\naddr = \"redis://t\"\n[target.tls]\nserver_name = \"x\"\n"), "job.toml"); err != nil {
		t.Fatal(err)
	}
}

func TestModes(t *testing.T) {
	dir := t.TempDir()
	rdb := writeFile(t, dir, "dump.rdb", "REDIS0011")
	for _, c := range []struct {
		mode, toml, want string
	}{
		{"", base, ""},
		{"sync", base, ""},
		{"migrate", base, ""},
		{"verify", base, ""},
		{"VERIFY", base, ""},
		{"", "rdb = \"" + rdb + "\"\ntarget = \"t\"", ""},
		{"migrate", "rdb = \"" + rdb + "\"\ntarget = \"t\"", ""},
		{"verify", "rdb = \"" + rdb + "\"\ntarget = \"t\"", `config: rdb: not used by verify, which compares a live source with the target`},
		{"verify", "target = \"t\"", `config: source: required: verify compares the source with the target`},
		{"verify", "source = \"s\"", `config: target: required`},
		{"copy", base, `config: mode: "copy" is not one of migrate, sync, verify`},
	} {
		j, err := ParseJob([]byte(c.toml), "job.toml")
		if err != nil {
			t.Fatal(err)
		}
		j.Mode = Mode(c.mode)
		err = j.Validate()
		if c.want == "" {
			if err != nil {
				t.Errorf("mode %q: %v", c.mode, err)
			} else if string(j.Mode) != strings.ToLower(c.mode) {
				t.Errorf("mode %q normalised to %q", c.mode, j.Mode)
			}
			continue
		}
		wantErr(t, err, c.want)
	}
}

// Validate may run again, e.g. after the CLI changed a field.
func TestValidateIdempotent(t *testing.T) {
	dir := t.TempDir()
	pw := writeFile(t, dir, "pw", "filepw\n")
	j := mustLoad(t, `status_addr = "off"
[source]
addr = "redis://u:urlpw@s/3"
[target]
addr = "rediss://t"
password_file = "`+pw+`"
[filter]
types = ["HASH"]
`)
	before := j.String()
	for i := 0; i < 3; i++ {
		if err := j.Validate(); err != nil {
			t.Fatalf("validate #%d: %v", i+2, err)
		}
	}
	if j.String() != before {
		t.Fatalf("second Validate changed the job:\n%s\n---\n%s", before, j.String())
	}
	if j.Source.Password != "urlpw" || j.Target.Password != "filepw" {
		t.Fatal("passwords not resolved")
	}
	// The CLI overrides the address: Validate derives again from it.
	j.Target.Addr = "redis://other:7000/4"
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if j.Target.Scheme != "redis" || j.Target.DB != 4 || !reflect.DeepEqual(j.Target.Hosts, []string{"other:7000"}) {
		t.Fatalf("target after override = %+v", j.Target)
	}
	// A password from a flag that contradicts the address is ambiguous.
	j.Source.Password = "flagpw"
	wantErr(t, j.Validate(), "config: source.password: given both in addr and as password (ambiguous)")
}

func TestExample(t *testing.T) {
	t.Setenv("FERRY_SOURCE_PASSWORD", "example-src-secret")
	j, err := LoadJob("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	// The example documents the defaults.
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"job", j.Name, d.Name}, {"data_dir (an example; the default depends on $HOME)", j.DataDir, "/var/lib/ferry"}, {"restore", j.Restore, d.Restore},
		{"fence", j.Fence, d.Fence}, {"batch_max_bytes", j.BatchMaxBytes, d.BatchMaxBytes},
		{"spool_memory", j.SpoolMemory, d.SpoolMemory}, {"keepalive", j.KeepaliveInterval, d.KeepaliveInterval},
		{"status_addr", j.StatusAddr, d.StatusAddr}, {"cutover_pause_max", j.CutoverPauseMax, d.CutoverPauseMax},
		{"source password", j.Source.Password, "example-src-secret"}, {"target password", j.Target.Password, ""},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	text, err := os.ReadFile("example.toml")
	if err != nil {
		t.Fatal(err)
	}
	// Every key ferry reads is documented in the example.
	keys := append(jobKeys(), "addr", "addrs", "username", "password", "password_file",
		"sentinel_username", "sentinel_password", "read_from", "reader", "scan_big_value", "dial_timeout",
		"enabled", "ca_file", "cert_file", "key_file", "server_name", "insecure_skip_verify",
		"dbs", "block_dbs", "prefixes", "block_prefixes", "regex", "block_regex",
		"types", "block_types", "commands", "block_commands")
	for _, k := range keys {
		if !strings.Contains(string(text), "\n"+k+" =") && !strings.Contains(string(text), "# "+k+" =") && !strings.Contains(string(text), "["+k+"]") {
			t.Errorf("example.toml does not document %q", k)
		}
	}
}

// String is TOML that LoadJob reads back to the same job.
func TestStringRoundTrip(t *testing.T) {
	j := mustLoad(t, `name = "rt"
data_dir = "d \"quoted\" \\ dir"
target_nonempty = "flush"
restore = "never"
fence = "off"
fold = false
on_error = "skip"
keepalive_interval = "1m30s"
max_conn_age = "1h"
db_map = { "1" = 0, "10" = 2 }
batch_max_ops = 7
batch_max_bytes = 12345
max_inflight_bytes = "3GB"
spool_memory = "1MiB"
spool_max_disk = "5GiB"
status_addr = "off"
log_level = "error"
log_format = "json"
progress_interval = "250ms"
max_ops_per_second = 5
max_bytes_per_second = "2MB"
cutover_pause_max = "10s"
cutover_hook = "echo 'a\tb'"
[source]
addr = "sentinel://s1,s2/mm"
addrs = ["s3:1"]
username = "u"
read_from = "replica"
dial_timeout = "1s"
[target]
addr = "rediss://[::1]:7000/2"
[target.tls]
server_name = "x"
[filter]
dbs = [1]
block_dbs = [2]
prefixes = ["p"]
block_prefixes = ["q"]
regex = ["r"]
block_regex = ["s"]
types = ["hash"]
block_types = ["set"]
commands = ["set"]
block_commands = ["del"]
`)
	k, err := load(t, j.String())
	if err != nil {
		t.Fatalf("%v\n%s", err, j.String())
	}
	if !reflect.DeepEqual(j, k) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", j.String(), k.String())
	}
	// The mode is a comment.
	j.Mode = "sync"
	if !strings.HasPrefix(j.String(), "# mode: sync\n") {
		t.Fatal("mode missing from String")
	}
}

func TestEndpointGoStringRedacted(t *testing.T) {
	e, err := ParseAddr("redis://u:topsecret@h")
	if err != nil {
		t.Fatal(err)
	}
	e.Password = "topsecret"
	for _, s := range []string{e.String(), e.Redacted(), e.GoString()} {
		if strings.Contains(s, "topsecret") {
			t.Fatalf("%q leaks the password", s)
		}
	}
}

// Values a CLI sets directly, bypassing the file.
func TestValidateAfterFlags(t *testing.T) {
	ok := func() Job {
		j := Default()
		j.Source.Addr = "redis://s"
		j.Target.Addr = "redis://t"
		return j
	}
	cases := []struct {
		name string
		set  func(j *Job)
		want string
	}{
		{"db_map key", func(j *Job) { j.DBMap = map[int]int{-1: 0} }, "config: db_map: source db -1 is not a database number (0 or more)"},
		{"keepalive negative", func(j *Job) { j.KeepaliveInterval = -time.Second }, "config: keepalive_interval: must not be negative"},
		{"max_conn_age negative", func(j *Job) { j.MaxConnAge = -1 }, "config: max_conn_age: must not be negative"},
		{"spool_max_disk negative", func(j *Job) { j.SpoolMaxDisk = -1 }, "config: spool_max_disk: must not be negative"},
		{"target read_from", func(j *Job) { j.Target.ReadFrom = "replica" }, "config: target.read_from: applies only to the source"},
		{"target scan_big_value", func(j *Job) { j.Target.ScanBigValue = MiB }, "config: target.scan_big_value: applies only to the source"},
		{"scan_big_value negative", func(j *Job) { j.Source.ScanBigValue = -1 }, "config: source.scan_big_value: must not be negative (0 = read every value with one DUMP)"},
		{"dial_timeout zero", func(j *Job) { j.Target.DialTimeout = 0 }, "config: target.dial_timeout: must be more than 0"},
		{"name", func(j *Job) { j.Name = "a/b" }, `config: job: "a/b" is not a valid job name`},
		{"source addr", func(j *Job) { j.Source.Addr = "redis://h:x" }, `config: source.addr: "redis://h:x": bad port "x" (want 1..65535)`},
		{"filter type", func(j *Job) { j.Filter.Types = []string{"bitmap"} }, `config: filter.types: "bitmap" is not one of string, list, set, zset, hash, stream, module`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := ok()
			c.set(&j)
			wantErr(t, j.Validate(), c.want)
		})
	}
	j := ok()
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	// Control characters survive String and LoadJob.
	j.CutoverHook = "a\x01b\x7fc\r\n"
	k, err := load(t, j.String())
	if err != nil || k.CutoverHook != j.CutoverHook {
		t.Fatalf("hook %q, %v", k.CutoverHook, err)
	}
}

func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	if d := DefaultDataDir(); d != "/state/ferry" {
		t.Errorf("with XDG_STATE_HOME: %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "relative") // ignored, as the XDG spec says
	t.Setenv("HOME", "/home/op")
	if d := DefaultDataDir(); d != "/home/op/.local/state/ferry" {
		t.Errorf("with HOME: %s", d)
	}
}

func TestShards(t *testing.T) {
	for v, want := range map[string]ShardSet{"0/1": {N: 1}, "1/3": {I: 1, N: 3}, " 2 / 3 ": {I: 2, N: 3}, "ordinal/4": {N: 4, Ordinal: true}} {
		if got, err := ParseShards(v); err != nil || got != want {
			t.Errorf("ParseShards(%q) = %+v, %v", v, got, err)
		}
	}
	for _, v := range []string{"3/3", "-1/3", "1", "a/b", "0/0", "1/2000"} {
		if _, err := ParseShards(v); err == nil || !strings.Contains(err.Error(), `"I/N"`) {
			t.Errorf("ParseShards(%q): %v", v, err)
		}
	}
	s := ShardSet{I: 1, N: 3}
	if !s.Takes(1) || !s.Takes(4) || s.Takes(0) || s.Takes(2) || !(ShardSet{N: 1}).Takes(7) {
		t.Error("Takes")
	}
	o := ShardSet{N: 3, Ordinal: true}
	if err := o.resolveOrdinal("ferry-orders-2"); err != nil || o.I != 2 || o.Ordinal {
		t.Errorf("ordinal of ferry-orders-2: %+v %v", o, err)
	}
	for _, h := range []string{"ferry", "ferry-5"} {
		o := ShardSet{N: 3, Ordinal: true}
		if err := o.resolveOrdinal(h); err == nil {
			t.Errorf("ordinal of %q: no error", h)
		}
	}
	wantErr(t, func() error { _, err := ParseJob([]byte(`shards = "3/3"`), "job.toml"); return err }(), `config: shards: "3/3": use "I/N"`)
}

// TestScanReaderReadsReplicas: read_from = "replica" goes with every
// reader.
func TestScanReaderReadsReplicas(t *testing.T) {
	for _, r := range ReaderModes {
		j, err := ParseJob([]byte("target = \"t\"\n[source]\naddr = \"s\"\nread_from = \"replica\"\nreader = \""+string(r)+"\"\n"), "job.toml")
		if err == nil {
			err = j.Validate()
		}
		if err != nil {
			t.Errorf("reader %s: %v", r, err)
		} else if j.Source.ReadFrom != ReadFromReplica || j.Source.Reader != r {
			t.Errorf("reader %s: read_from %q reader %q", r, j.Source.ReadFrom, j.Source.Reader)
		}
	}
}
