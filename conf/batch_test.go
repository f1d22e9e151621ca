package conf

import (
	"reflect"
	"testing"
	"time"
)

func parseBatch(t *testing.T, text string) (Batch, error) {
	t.Helper()
	return ParseBatch([]byte(text), "jobs.toml")
}

func TestBatchMerge(t *testing.T) {
	dir := t.TempDir()
	rdb := writeFile(t, dir, "dump.rdb", "REDIS0011")
	t.Setenv("FERRY_T_SRCPW", "srcpw")
	b, err := parseBatch(t, `max_parallel = 2
fail_fast = true

[defaults]
mode = "migrate"
status_addr = ":9999"
log_level = "debug"
restore = "never"
keepalive_interval = "10s"
db_map = { "1" = 0, "2" = 0 }
[defaults.source]
username = "repl"
password = "${FERRY_T_SRCPW}"
dial_timeout = "3s"
[defaults.source.tls]
server_name = "src.example"
[defaults.target]
addr = "redis://target:7000"
[defaults.filter]
prefixes = ["a:", "b:"]
block_types = ["stream"]

[[job]]
name = "one"
source = "rediss://s1:6380"

[[job]]
name = "two"
mode = "sync"
restore = "always"
db_map = { "3" = 1 }
[job.source]
addr = "rediss://s2"
dial_timeout = "1s"
[job.source.tls]
insecure_skip_verify = true
[job.filter]
prefixes = ["c:"]

[[job]]
name = "three"
mode = "verify"
source = "rediss://s3"
[job.target]
addr = "redis://t3"

[[job]]
name = "four"
source = ""
rdb = "`+rdb+`"
`)
	if err != nil {
		t.Fatal(err)
	}
	if b.MaxParallel != 2 || !b.FailFast || b.StatusAddr != ":9999" || b.LogLevel != "debug" || b.LogFormat != "auto" || b.CPU != CPUAuto || len(b.Jobs) != 4 {
		t.Fatalf("batch = %+v", b)
	}
	one, two, three, four := b.Jobs[0], b.Jobs[1], b.Jobs[2], b.Jobs[3]
	checks := []struct {
		name      string
		got, want any
	}{
		{"one.mode", one.Mode, ModeMigrate},
		{"one.Job.Mode", one.Job.Mode, ModeMigrate},
		{"one.name", one.Job.Name, "one"},
		{"one.restore", one.Job.Restore, RestoreNever},
		{"one.keepalive", one.Job.KeepaliveInterval, 10 * time.Second},
		{"one.db_map", one.Job.DBMap, map[int]int{1: 0, 2: 0}},
		{"one.source.hosts", one.Job.Source.Hosts, []string{"s1:6380"}},
		{"one.source.username", one.Job.Source.Username, "repl"},
		{"one.source.password", one.Job.Source.Password, "srcpw"},
		{"one.source.dial_timeout", one.Job.Source.DialTimeout, 3 * time.Second},
		{"one.source.tls", one.Job.Source.TLS, TLS{Enabled: true, ServerName: "src.example"}},
		{"one.target", one.Job.Target.Hosts, []string{"target:7000"}},
		{"one.filter.prefixes", one.Job.Filter.Prefixes, []string{"a:", "b:"}},
		{"one.filter.block_types", one.Job.Filter.BlockTypes, []string{"stream"}},
		{"one.status_addr", one.Job.StatusAddr, ":9999"},
		{"two.mode", two.Mode, ModeSync},
		{"two.restore", two.Job.Restore, RestoreAlways},
		{"two.db_map replaced", two.Job.DBMap, map[int]int{3: 1}},
		{"two.source.addr", two.Job.Source.Hosts, []string{"s2:6379"}},
		{"two.source.username", two.Job.Source.Username, "repl"},
		{"two.source.dial_timeout", two.Job.Source.DialTimeout, time.Second},
		{"two.source.tls merged", two.Job.Source.TLS, TLS{Enabled: true, ServerName: "src.example", InsecureSkipVerify: true}},
		{"two.filter.prefixes replaced", two.Job.Filter.Prefixes, []string{"c:"}},
		{"two.filter.block_types kept", two.Job.Filter.BlockTypes, []string{"stream"}},
		{"three.mode", three.Mode, ModeVerify},
		{"three.target", three.Job.Target.Hosts, []string{"t3:6379"}},
		{"four.rdb", four.Job.RDB, rdb},
		{"four.source unset", four.Job.Source.IsSet(), false},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
	if one.Job.JobDir() == two.Job.JobDir() {
		t.Error("jobs share a JobDir")
	}
}

func TestBatchDefaultsAndMinimal(t *testing.T) {
	b, err := parseBatch(t, "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"s\"\ntarget = \"t\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if b.MaxParallel != DefaultMaxParallel || b.FailFast || b.StatusAddr != "127.0.0.1:9121" || b.LogLevel != "info" {
		t.Fatalf("batch = %+v", b)
	}
}

func TestBatchErrors(t *testing.T) {
	const ok = "source = \"s\"\ntarget = \"t\"\nmode = \"sync\"\n"
	cases := []struct{ name, toml, want string }{
		{"job value", "[[job]]\nname = \"orders\"\n" + ok + "restore = \"sometimes\"", `config: job[orders].restore: "sometimes" is not one of auto, always, never`},
		{"defaults value in job", "[defaults]\nrestore = \"sometimes\"\n[[job]]\nname = \"orders\"\n" + ok, `config: defaults.restore: "sometimes" is not one of auto, always, never`},
		{"defaults type", "[defaults]\nbatch_max_ops = \"x\"\n[[job]]\nname = \"a\"\n" + ok, `config: defaults.batch_max_ops: must be a whole number, not "x"`},
		{"job nested", "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"s\"\n[job.target]\naddr = \"redis://t:0\"", `config: job[a].target.addr: "redis://t:0": bad port "0" (want 1..65535)`},
		{"unknown in job", "[[job]]\nname = \"a\"\n" + ok + "taget_nonempty = \"flush\"", `config: jobs.toml: unknown key "job[a].taget_nonempty" (did you mean job[a].target_nonempty?)`},
		{"unknown in job.target", "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"s\"\n[job.target]\naddr = \"t\"\npasswd = \"x\"", `unknown key "job[a].target.passwd" (did you mean job[a].target.password?)`},
		{"unknown in defaults", "[defaults]\nrestor = \"auto\"\n[[job]]\nname = \"a\"\n" + ok, `config: jobs.toml: unknown key "defaults.restor" (did you mean defaults.restore?)`},
		{"job key at top", "restore = \"auto\"\n[[job]]\nname = \"a\"\n" + ok, `config: jobs.toml: unknown key "restore" (job settings of a batch file go in [defaults] or in a [[job]] table)`},
		{"unknown at top", "max_paralel = 2\n[[job]]\nname = \"a\"\n" + ok, `unknown key "max_paralel" (did you mean max_parallel?)`},
		{"job key in job", "[[job]]\njob = \"a\"\n" + ok, `unknown key "job[#1].job" (the job's name is name = "...")`},
		{"name in defaults", "[defaults]\nname = \"x\"\n[[job]]\nname = \"a\"\n" + ok, `unknown key "defaults.name" (a name belongs in each [[job]], not in [defaults])`},
		{"no name", "[[job]]\n" + ok, `config: job[#1].name: required: every [[job]] needs a unique name`},
		{"bad name", "[[job]]\nname = \"a b\"\n" + ok, `config: job[#1].name: "a b" is not a valid job name (1 to 64 of a-z A-Z 0-9 _ . -, starting with a letter or digit)`},
		{"duplicate name", "[[job]]\nname = \"a\"\n" + ok + "[[job]]\nname = \"a\"\n" + ok, `config: job[a].name: "a" is the name of an earlier job: names must be unique`},
		{"no mode", "[[job]]\nname = \"a\"\nsource = \"s\"\ntarget = \"t\"", `config: job[a].mode: required: one of migrate, sync, verify (in the [[job]] or in [defaults])`},
		{"bad mode", "[[job]]\nname = \"a\"\nsource = \"s\"\ntarget = \"t\"\nmode = \"copy\"", `config: job[a].mode: "copy" is not one of migrate, sync, verify`},
		{"bad mode in defaults", "[defaults]\nmode = \"copy\"\n[[job]]\nname = \"a\"\nsource = \"s\"\ntarget = \"t\"", `config: defaults.mode: "copy" is not one of migrate, sync, verify`},
		{"no target", "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"s\"", `config: job[a].target: required`},
		{"verify rdb", "[[job]]\nname = \"a\"\nmode = \"verify\"\ntarget = \"t\"\nrdb = \"x.rdb\"", `config: job[a].rdb: not used by verify`},
		{"process-wide status", "[[job]]\nname = \"a\"\n" + ok + "status_addr = \":1\"", `config: job[a].status_addr: applies to the whole batch run: set it in [defaults], not per job`},
		{"process-wide log", "[[job]]\nname = \"a\"\n" + ok + "log_level = \"debug\"", `config: job[a].log_level: applies to the whole batch run`},
		{"process-wide format", "[[job]]\nname = \"a\"\n" + ok + "log_format = \"json\"", `config: job[a].log_format: applies to the whole batch run`},
		{"process-wide scheduling", "[[job]]\nname = \"a\"\n" + ok + "cpu_scheduling = \"normal\"", `config: job[a].cpu_scheduling: applies to the whole batch run`},
		{"max_parallel 0", "max_parallel = 0\n[[job]]\nname = \"a\"\n" + ok, `config: max_parallel: must be 1 or more, not 0`},
		{"max_parallel type", "max_parallel = \"many\"\n[[job]]\nname = \"a\"\n" + ok, `config: max_parallel: must be a whole number, not "many"`},
		{"fail_fast type", "fail_fast = 1\n[[job]]\nname = \"a\"\n" + ok, `config: fail_fast: must be true or false, not an integer`},
		{"defaults type", "defaults = 1\n[[job]]\nname = \"a\"\n" + ok, `config: defaults: must be a table, not an integer`},
		{"no jobs", "max_parallel = 1\n", `config: jobs.toml: no [[job]] tables: a batch file needs at least one`},
		{"job not tables", "job = [1, 2]\n", `config: job: must be [[job]] tables`},
		{"single-job file", "job = \"x\"\n" + ok, `config: jobs.toml: this is a single-job file (name = "..." at the top), not a batch file with [[job]] tables: run it with ferry sync|migrate|verify -c`},
		{"syntax", "[[job]\nname = \"a\"", `config: jobs.toml:2:6: expected end of table array name delimiter ']'`},
		{"aof and default source", "[defaults]\nsource = \"s\"\n[[job]]\nname = \"a\"\nmode = \"sync\"\ntarget = \"t\"\naof = \"x\"", `config: job[a].aof: aof and source exclude each other`},
		{"verify aof", "[[job]]\nname = \"a\"\nmode = \"verify\"\ntarget = \"t\"\naof = \"x\"", `config: job[a].aof: not used by verify`},
		{"rdb and default source", "[defaults]\nsource = \"s\"\n[[job]]\nname = \"a\"\nmode = \"sync\"\ntarget = \"t\"\nrdb = \"x.rdb\"", `config: job[a].rdb: rdb and source exclude each other`},
		{"ambiguous merged password", "[defaults.source]\npassword = \"x\"\n[[job]]\nname = \"a\"\nmode = \"sync\"\ntarget = \"t\"\nsource = \"redis://:y@s\"", `config: job[a].source.password: given both in addr and as password (ambiguous): keep one`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseBatch(t, c.toml+"\n")
			wantErr(t, err, c.want)
		})
	}
}

func TestExampleBatch(t *testing.T) {
	t.Chdir(t.TempDir())
	writeFile(t, ".", "archive.rdb", "REDIS0011")
	b, err := LoadBatch(mustAbs(t, "example-batch.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Jobs) != 3 || b.MaxParallel != 4 || b.Jobs[1].Mode != "sync" || b.Jobs[2].Job.RDB != "archive.rdb" {
		t.Fatalf("batch = %+v", b)
	}
	_, err = LoadBatch("missing.toml")
	wantErr(t, err, "config: open missing.toml: no such file or directory")
}
