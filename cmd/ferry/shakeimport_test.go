package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RedisShake v4 configurations, written from its documented format.
const (
	shakeSyncCluster = `
[sync_reader]
cluster = true
address = "10.0.0.1:7000"
username = "repl"
password = "s3cret-Pa55"
tls = false
sync_rdb = true
sync_aof = true
prefer_replica = true
try_diskless = true

[redis_writer]
cluster = true
address = "10.0.0.2:7000"
password = "hunter2-xyz"
tls = true
off_reply = false

[filter]
allow_keys = ["user:1"]
allow_key_prefix = ["user:", "order:"]
allow_key_suffix = [":hot"]
allow_key_regex = ['^cart:\d+$']
block_keys = ["user:tmp"]
block_key_prefix = ["tmp:"]
block_key_suffix = []
block_key_regex = []
allow_db = []
block_db = [3]
allow_command = []
block_command = ["FLUSHALL", "FLUSHDB"]
allow_command_group = []
block_command_group = ["SCRIPTING"]
function = ""

[advanced]
dir = "/var/lib/shake"
ncpu = 4
pprof_port = 0
status_port = 8080
log_file = "shake.log"
log_level = "warn"
log_interval = 10
rdb_restore_command_behavior = "panic"
pipeline_count_limit = 1024
target_redis_client_max_querybuf_len = 1024000000
target_redis_proto_max_bulk_len = 512000000
aws_psync = ""
empty_db_before_sync = false
`
	shakeScan = `
[scan_reader]
address = "r-abc.redis.rds.aliyuncs.com:6379"
password = "s3cret-Pa55"
dbs = [0, 2]
scan = true
ksn = true
count = 1

[redis_writer]
address = "10.0.0.2:6379"

[advanced]
empty_db_before_sync = true
rdb_restore_command_behavior = "rewrite"
`
	shakeRDB = `
[rdb_reader]
filepath = "/backup/dump.rdb"

[redis_writer]
address = "127.0.0.1:6380"

[filter]
function = """
shake.call(DB, ARGV)
"""
`
	shakeAOF = `
[aof_reader]
filepath = "/backup/appendonlydir"
timestamp = 1700000000

[redis_writer]
address = "127.0.0.1:6380"
`
)

// TestConfigImport: RedisShake configurations translate into job files
// that config check accepts, with a note for each key that does not
// translate and no password copied.
func TestConfigImport(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name, in  string
		wantJob   []string
		wantNotes []string
	}{
		{"sync-cluster", shakeSyncCluster,
			[]string{`addr = "redis://10.0.0.1:7000"`, `username = "repl"`, `password = "${FERRY_SOURCE_PASSWORD}"`, `reader = "psync"`, `read_from = "replica"`,
				`addr = "rediss://10.0.0.2:7000"`, `password = "${FERRY_TARGET_PASSWORD}"`,
				`prefixes = ["user:", "order:"]`, `regex = ["^user:1$", ":hot$", "^cart:\\d+$"]`, `block_regex = ["^user:tmp$"]`, `block_prefixes = ["tmp:"]`,
				`block_dbs = [3]`, `block_commands = ["flushall", "flushdb"]`,
				`data_dir = "/var/lib/shake"`, `status_addr = "127.0.0.1:8080"`, `log_level = "warn"`, `progress_interval = "10s"`,
				`target_nonempty = "refuse"`, `batch_max_ops = 1024`},
			[]string{"sync_reader.password: not copied into the job file: export FERRY_SOURCE_PASSWORD", "sync_reader.cluster: not needed",
				"filter.block_command_group: command groups (SCRIPTING) are not translated", "advanced.log_file:", "advanced.ncpu:",
				"advanced.target_redis_proto_max_bulk_len: not needed", "sync_reader.try_diskless: not needed"}},
		{"scan", shakeScan,
			[]string{`addr = "redis://r-abc.redis.rds.aliyuncs.com:6379"`, `reader = "scan"`, `dbs = [0, 2]`, `target_nonempty = "flush"`},
			[]string{"scan_reader.count: ferry sizes its SCAN batches itself"}},
		{"rdb", shakeRDB, []string{`rdb = "/backup/dump.rdb"`, `addr = "redis://127.0.0.1:6380"`},
			[]string{"filter.function: a Lua function cannot be translated"}},
		{"aof", shakeAOF, []string{`aof = "/backup/appendonlydir"`},
			[]string{"aof_reader.timestamp: not translated"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := writeFile(t, dir, c.name+".toml", c.in)
			code, out, errs := ferryRun("config", "import", in)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			checkClean(t, out, errs)
			for _, w := range c.wantJob {
				if !strings.Contains(out, w+"\n") {
					t.Errorf("the job file lacks %s:\n%s", w, out)
				}
			}
			for _, w := range c.wantNotes {
				if !strings.Contains(errs, "ferry: config import: note: "+w) {
					t.Errorf("no note %q:\n%s", w, errs)
				}
			}
			// What it wrote passes config check (the rdb and aof paths
			// exist nowhere here: config check reads them).
			job := writeFile(t, dir, c.name+"-job.toml", out)
			t.Setenv("FERRY_SOURCE_PASSWORD", "x")
			t.Setenv("FERRY_TARGET_PASSWORD", "y")
			if c.name == "rdb" || c.name == "aof" {
				return
			}
			if code, cout, cerrs := ferryRun("config", "check", "-c", job); code != exitOK {
				t.Errorf("config check of the translation: exit %d\n%s\n%s", code, cout, cerrs)
			}
		})
	}

	t.Run("-o", func(t *testing.T) {
		in := writeFile(t, dir, "o.toml", shakeScan)
		dst := filepath.Join(dir, "out.toml")
		code, out, errs := ferryRun("config", "import", "-o", dst, in)
		st, err := os.Stat(dst)
		if code != exitOK || err != nil || st.Mode().Perm() != 0o600 || !strings.Contains(out, "wrote "+dst) {
			t.Errorf("exit %d, %v, %v\n%s\n%s", code, st, err, out, errs)
		}
	})
}

// TestConfigImportErrors: what is not a usable RedisShake configuration
// is exit 2 with one line.
func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, in, want string }{
		{"garbage", "this is [not toml", "config import:"},
		{"no-reader", "[redis_writer]\naddress = \"a:1\"\n", "no reader"},
		{"two-readers", "[sync_reader]\naddress = \"a:1\"\n[rdb_reader]\nfilepath = \"x\"\n[redis_writer]\naddress = \"b:1\"\n", "one reader"},
		{"no-writer", "[sync_reader]\naddress = \"a:1\"\n", "no [redis_writer]"},
	} {
		code, out, errs := ferryRun("config", "import", writeFile(t, dir, c.name+".toml", c.in))
		checkFailure(t, code, out, errs, exitUsage, c.want)
		if strings.Count(errs, "\n") != 1 {
			t.Errorf("%s: want one line:\n%s", c.name, errs)
		}
	}
	code, out, errs := ferryRun("config", "import")
	checkFailure(t, code, out, errs, exitUsage, "one RedisShake file")
	code, out, errs = ferryRun("config", "import", filepath.Join(dir, "missing.toml"))
	checkFailure(t, code, out, errs, exitUsage, "no such file")
}
