package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// importCase is a RedisShake config as an operator would have written it,
// and what ferry config import says about it.
type importCase struct {
	name  string
	shake string   // the file; {dir} is the test's temp dir
	notes []string // the keys of the warnings on stderr, in order
	check []string // lines config check prints for the translated file
}

var importCases = []importCase{
	{
		name: "sync cluster to cluster with filters",
		shake: `# RedisShake: migrate the user and order keys of a cluster
[sync_reader]
cluster = true
address = "10.0.1.10:7000"
username = "shake"
password = "hunter2-xyz"
tls = false
sync_rdb = true
sync_aof = true
prefer_replica = true
try_diskless = false

[redis_writer]
cluster = true
address = "10.0.2.10:7000"
username = ""
password = "s3cret-Pa55"
tls = true
off_reply = false

[filter]
allow_key_prefix = ["user:", "order:"]
allow_key_suffix = []
block_key_prefix = ["user:tmp:"]
block_key_suffix = [":lock"]
allow_db = []
block_db = []
allow_command = []
block_command = ["FLUSHALL", "FLUSHDB"]
allow_command_group = []
block_command_group = ["SCRIPTING", "PUBSUB"]
function = ""

[advanced]
dir = "{dir}/data"
ncpu = 0
pprof_port = 0
status_port = 0
log_file = "shake.log"
log_level = "info"
log_interval = 5
rdb_restore_command_behavior = "panic"
pipeline_count_limit = 1024
target_redis_client_max_querybuf_len = 1024000000
target_redis_proto_max_bulk_len = 512000000
aws_psync = ""
empty_db_before_sync = false

[module]
target_mbbloom_version = 20603
`,
		notes: []string{"sync_reader.password", "redis_writer.tls", "redis_writer.password", "advanced.log_file", "module.target_mbbloom_version"},
		check: []string{`name = "shake"`, `addr = "redis://10.0.1.10:7000"`, `addr = "rediss://10.0.2.10:7000"`, `read_from = "replica"`,
			`reader = "psync"`, `prefixes = ["user:", "order:"]`, `block_prefixes = ["user:tmp:"]`, `block_regex = [":lock$"]`,
			`block_commands = ["flushall", "flushdb", "eval",`, `target_nonempty = "refuse"`, `status_addr = "off"`, `password = "***"`},
	},
	{
		name: "scan reader with ksn from a managed service",
		shake: `[scan_reader]
cluster = false
address = "master.cache.example.com:6379"
username = "default"
password = "${SHAKE_SRC_PASSWORD}"
tls = true
dbs = [0, 1]
scan = true
ksn = true
count = 10

[redis_writer]
address = "127.0.0.1:6390"

[filter]
allow_keys = ["config"]
allow_key_regex = ['^session:[0-9a-f]{32}$']
block_key_regex = ['^session:0+$']

[advanced]
status_port = 9700
pprof_port = 9701
log_level = "debug"
log_interval = 1
rdb_restore_command_behavior = "rewrite"
aws_psync = "master.cache.example.com:6379@abcdefpsync"
`,
		notes: []string{"scan_reader.tls", "scan_reader.count", "advanced.status_port", "advanced.pprof_port", "advanced.aws_psync"},
		check: []string{`reader = "scan"`, `addr = "rediss://master.cache.example.com:6379"`, `dbs = [0, 1]`,
			`regex = ["^config$", "^session:[0-9a-f]{32}$"]`, `block_regex = ["^session:0+$"]`, `status_addr = "127.0.0.1:9700"`,
			`pprof = true`, `log_level = "debug"`, `progress_interval = "1s"`, `target_nonempty = "overwrite"`},
	},
	{
		name: "rdb reader into an emptied target",
		shake: `[rdb_reader]
filepath = "{dir}/dump.rdb"

[redis_writer]
address = "127.0.0.1:6391"
password = "s3cret-Pa55"

[filter]
allow_db = [0, 2]
block_command_group = ["GEO"]
function = """
if DB == 2 then
  shake.call(0, ARGV)
end
"""

[advanced]
empty_db_before_sync = true
target_redis_proto_max_bulk_len = 0
pipeline_count_limit = 128
`,
		notes: []string{"redis_writer.password", "filter.block_command_group", "filter.function"},
		check: []string{`rdb = "{dir}/dump.rdb"`, `target_nonempty = "flush"`, `restore = "never"`, `batch_max_ops = 128`, `dbs = [0, 2]`},
	},
	{
		name: "aof reader with a timestamp",
		shake: `[aof_reader]
filepath = "{dir}/appendonlydir/appendonly.aof.manifest"
timestamp = 1735689600

[redis_writer]
address = "127.0.0.1:6392"

[filter]
allow_command_group = ["HASH", "STRING"]
block_db = [15]

[advanced]
ncpu = 2
rdb_restore_command_behavior = "skip"
target_redis_client_max_querybuf_len = 8388608
unknown_knob = 1
`,
		notes: []string{"aof_reader.timestamp", "advanced.ncpu", "advanced.rdb_restore_command_behavior", "advanced.unknown_knob"},
		check: []string{`aof = "{dir}/appendonlydir/appendonly.aof.manifest"`, `types = ["hash", "string"]`, `block_dbs = [15]`,
			`max_inflight_bytes = "4MiB"`, `target_nonempty = "refuse"`},
	},
}

// noteKeys returns the keys of the "ferry: warning: KEY: ..." lines of
// stderr, failing on any other line.
func noteKeys(t *testing.T, stderr string) []string {
	t.Helper()
	var keys []string
	for l := range strings.SplitSeq(strings.TrimRight(stderr, "\n"), "\n") {
		if l == "" {
			continue
		}
		rest, ok := strings.CutPrefix(l, "ferry: warning: ")
		key, _, ok2 := strings.Cut(rest, ": ")
		if !ok || !ok2 {
			t.Errorf("stderr line %q is not a warning", l)
			continue
		}
		keys = append(keys, key)
	}
	return keys
}

// noSecrets fails when an output holds a password of the tests or a trace.
func noSecrets(t *testing.T, outputs ...string) {
	t.Helper()
	for _, s := range outputs {
		for _, bad := range append([]string{"goroutine ", ".go:"}, secrets...) {
			if strings.Contains(s, bad) {
				t.Errorf("output holds %q:\n%s", bad, s)
			}
		}
	}
}

// TestConfigImport: realistic RedisShake configs translate (exit 0) into a
// job file that config check accepts, with one warning per setting that
// was not translated, and no password copied anywhere.
func TestConfigImport(t *testing.T) {
	for _, c := range importCases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			t.Setenv("FERRY_SOURCE_PASSWORD", "env-Pa55wd")
			t.Setenv("FERRY_TARGET_PASSWORD", "env-Pa55wd")
			t.Setenv("SHAKE_SRC_PASSWORD", "env-Pa55wd")
			writeFile(t, dir, "dump.rdb", "REDIS0011")
			if err := os.MkdirAll(filepath.Join(dir, "appendonlydir"), 0o700); err != nil {
				t.Fatal(err)
			}
			writeFile(t, filepath.Join(dir, "appendonlydir"), "appendonly.aof.manifest", "file appendonly.aof.1.base.rdb seq 1 type b\n")
			in := writeFile(t, dir, "shake.toml", strings.ReplaceAll(c.shake, "{dir}", dir))

			// Printed on stdout ...
			code, out, errs := ferryRun("config", "import", in)
			if code != exitOK {
				t.Fatalf("config import: exit %d\nstderr:\n%s", code, errs)
			}
			if got := noteKeys(t, errs); !slices.Equal(got, c.notes) {
				t.Errorf("warnings about %q, want %q\nstderr:\n%s", got, c.notes, errs)
			}
			noSecrets(t, out, errs)

			// ... or written with -o (flags after the file work too).
			outFile := filepath.Join(dir, "job.toml")
			code, out2, errs2 := ferryRun("config", "import", in, "-o", outFile)
			if code != exitOK || out2 != "" || errs2 != errs {
				t.Fatalf("config import -o: exit %d, stdout %q, stderr:\n%s", code, out2, errs2)
			}
			data, err := os.ReadFile(outFile)
			if err != nil || string(data) != out {
				t.Fatalf("-o file differs from stdout (%v):\n%s", err, data)
			}
			if st, err := os.Stat(outFile); err != nil || st.Mode().Perm() != 0o600 {
				t.Errorf("-o file mode %v (%v), want 0600", st.Mode().Perm(), err)
			}

			// The job file passes config check.
			code, checked, cerrs := ferryRun("config", "check", "-c", outFile)
			if code != exitOK {
				t.Fatalf("config check of the translation: exit %d\n%s\njob file:\n%s", code, cerrs, out)
			}
			for _, w := range c.check {
				if w = strings.ReplaceAll(w, "{dir}", dir); !strings.Contains(checked, w) {
					t.Errorf("config check does not show %s:\n%s", w, checked)
				}
			}
			noSecrets(t, checked, cerrs)
		})
	}
}

// TestConfigImportPasswordVariable: a literal password becomes a reference
// to $FERRY_SOURCE_PASSWORD, so the job file fails config check with one
// line until it is set.
func TestConfigImportPasswordVariable(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "shake.toml", "[sync_reader]\naddress = \"127.0.0.1:7001\"\npassword = \"hunter2-xyz\"\n[redis_writer]\naddress = \"127.0.0.1:7002\"\n")
	out := filepath.Join(dir, "job.toml")
	if code, _, errs := ferryRun("config", "import", "-o", out, in); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	t.Setenv("FERRY_SOURCE_PASSWORD", "")
	os.Unsetenv("FERRY_SOURCE_PASSWORD")
	code, stdout, stderr := ferryRun("config", "check", "-c", out)
	checkFailure(t, code, stdout, stderr, exitUsage, "FERRY_SOURCE_PASSWORD", "not set")
}

// TestConfigImportErrors: what cannot be translated is exit 2 with one line.
func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.toml", "[sync_reader]\naddress = \"127.0.0.1:7001\"\n[redis_writer]\naddress = \"127.0.0.1:7002\"\n")
	ferryJob := writeFile(t, dir, "job.toml", "[source]\naddr = \"redis://127.0.0.1:1\"\n[target]\naddr = \"redis://127.0.0.1:2\"\n")
	for _, c := range []struct {
		name string
		args []string
		want []string
	}{
		{"no file", []string{"config", "import"}, []string{"no file given"}},
		{"two files", []string{"config", "import", good, good}, []string{"one file"}},
		{"missing", []string{"config", "import", filepath.Join(dir, "nope.toml")}, []string{"nope.toml", "no such file"}},
		{"directory", []string{"config", "import", dir}, []string{"directory"}},
		{"garbage", []string{"config", "import", writeFile(t, dir, "garbage.toml", "\x7fELF\x02\x01\x01 binary === [[[")}, []string{"not TOML"}},
		{"yaml", []string{"config", "import", writeFile(t, dir, "shake.yaml", "sync_reader:\n  address: 127.0.0.1:6379\n")}, []string{"not TOML"}},
		{"empty", []string{"config", "import", writeFile(t, dir, "empty.toml", "")}, []string{"no reader section"}},
		{"other sections", []string{"config", "import", writeFile(t, dir, "other.toml", "[server]\nport = 1\n")}, []string{"no reader section"}},
		{"no writer", []string{"config", "import", writeFile(t, dir, "nowriter.toml", "[scan_reader]\naddress = \"a:1\"\n")}, []string{"no [redis_writer]"}},
		{"ferry file", []string{"config", "import", ferryJob}, []string{"ferry job file"}},
		{"wrong type", []string{"config", "import", writeFile(t, dir, "type.toml", "[sync_reader]\naddress = 6379\n[redis_writer]\naddress = \"a:1\"\n")}, []string{"sync_reader.address", "must be a string"}},
		{"unquoted password", []string{"config", "import", writeFile(t, dir, "pw.toml", "[sync_reader]\naddress = \"a:1\"\npassword = hunter2-xyz\n[redis_writer]\naddress = \"b:1\"\n")}, []string{"pw.toml:3", "not shown"}},
		{"output is input", []string{"config", "import", "-o", good, good}, []string{"input file"}},
		{"bad flag", []string{"config", "import", "--frob", good}, []string{"frob"}},
	} {
		code, out, errs := ferryRun(c.args...)
		checkFailure(t, code, out, errs, exitUsage, c.want...)
		if strings.Count(errs, "\n") != 1 || out != "" {
			t.Errorf("%s: want one line on stderr and nothing on stdout, got\nstdout:\n%s\nstderr:\n%s", c.name, out, errs)
		}
	}
	if data, err := os.ReadFile(good); err != nil || !strings.HasPrefix(string(data), "[sync_reader]") {
		t.Errorf("the input file was changed: %q, %v", data, err)
	}
}

func TestConfigImportHelp(t *testing.T) {
	for _, args := range [][]string{{"config", "import", "--help"}, {"config", "--help"}, {"help", "config"}} {
		code, out, errs := ferryRun(args...)
		if code != exitOK || errs != "" || !strings.Contains(out, "Usage: ferry config import [-o FILE] SHAKE.toml") || !strings.Contains(out, "RedisShake") {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
		}
	}
	if code, out, _ := ferryRun("--help"); code != exitOK || !strings.Contains(out, "config import SHAKE.toml") {
		t.Errorf("ferry --help does not mention config import:\n%s", out)
	}
}
