package main

// The CLI contract: bad input gets one clear line on stderr and a non-zero
// exit code (2 for usage and configuration, 1 for runtime failures), never a
// panic, a stack trace or a password. These tests need no Redis.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestMain(m *testing.M) {
	redis.SetLogger(redisLog{}) // as main does
	// Runs that set no data_dir use the default under the state
	// directory: this package's own, not the user's (nor another test
	// package's, which may run at the same time).
	state, err := os.MkdirTemp("", "ferry-test-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_STATE_HOME", state)
	code := m.Run()
	os.RemoveAll(state)
	os.Exit(code)
}

// ferryRun runs the CLI in-process as main would and returns the exit code,
// stdout and stderr.
func ferryRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// secrets are the passwords tests use: none may ever be printed.
var secrets = []string{"s3cret-Pa55", "hunter2-xyz", "wr0ng-Pa55", "env-Pa55wd", "file-Pa55wd"}

// checkFailure asserts the exit code and that stderr ends with one clear
// line: prefixed "ferry: error: " (exit 1) or "ferry: " (exit 2), holding
// every string of want (case-insensitive), and that neither stream holds a
// stack trace or a secret. It returns that last line.
func checkFailure(t *testing.T, code int, stdout, stderr string, wantCode int, want ...string) string {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout, stderr)
	}
	last := lastLine(stderr)
	prefix := "ferry: "
	if wantCode == exitFailure {
		prefix = "ferry: error: "
	}
	if !strings.HasPrefix(last, prefix) {
		t.Errorf("last stderr line %q does not start with %q\nstderr:\n%s", last, prefix, stderr)
	}
	if wantCode == exitUsage && strings.HasPrefix(last, "ferry: error: ") {
		t.Errorf("usage error reported as a runtime failure: %q", last)
	}
	for _, w := range want {
		if !strings.Contains(strings.ToLower(last), strings.ToLower(w)) {
			t.Errorf("last stderr line %q does not mention %q", last, w)
		}
	}
	checkClean(t, stdout, stderr)
	return last
}

// checkClean fails when the output holds a panic, a stack trace or a secret.
func checkClean(t *testing.T, outputs ...string) {
	t.Helper()
	for _, s := range outputs {
		for _, bad := range []string{"goroutine ", "panic", "runtime/debug", ".go:"} {
			if strings.Contains(s, bad) {
				t.Errorf("output holds %q:\n%s", bad, s)
			}
		}
		for _, pw := range secrets {
			if strings.Contains(s, pw) {
				t.Errorf("output holds the password %q:\n%s", pw, s)
			}
		}
	}
}

// lastLine is the last non-empty line of s ("" when none).
func lastLine(s string) string { return tail(s, 1) }

// tail is the last n lines of s, trailing newlines dropped.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNoArgs(t *testing.T) {
	code, out, errs := ferryRun()
	checkFailure(t, code, out, errs, exitUsage, "missing command", "--help")
	if out != "" || !strings.Contains(errs, "Commands:") {
		t.Errorf("want the usage on stderr and nothing on stdout; stdout:\n%s\nstderr:\n%s", out, errs)
	}
}

func TestUnknownCommand(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"help", "frobnicate"}, {"Sync"}} {
		code, out, errs := ferryRun(args...)
		checkFailure(t, code, out, errs, exitUsage, "unknown command", args[len(args)-1])
		if strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: want exactly one line on stderr, got:\n%s", args, errs)
		}
	}
	// A flag before the command is a usage error that says so.
	code, out, errs := ferryRun("-c", "job.toml", "sync")
	checkFailure(t, code, out, errs, exitUsage, "before the command")
}

func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Usage:", "Commands:", "sync", "migrate", "verify", "run", "config", "version", "Exit codes"}},
		{[]string{"-h"}, []string{"Usage:", "Commands:"}},
		{[]string{"help"}, []string{"Usage:", "Commands:"}},
		{[]string{"sync", "--help"}, []string{"Usage: ferry sync", "-source", "-target", "-rdb", "-c string", "-job", "-log-level", "SIGTERM"}},
		{[]string{"sync", "-h"}, []string{"Usage: ferry sync"}},
		{[]string{"help", "sync"}, []string{"Usage: ferry sync"}},
		{[]string{"migrate", "--help"}, []string{"Usage: ferry migrate", "-source", "-target", "exit 0 once"}},
		{[]string{"config", "--help"}, []string{"Usage: ferry config check -c FILE"}},
		{[]string{"config", "check", "--help"}, []string{"Usage: ferry config check", "-c string", "***"}},
		{[]string{"version", "--help"}, []string{"Usage: ferry version"}},
		{[]string{"run", "--help"}, []string{"Usage: ferry run -c FILE", "max_parallel", "fail_fast", "-log-level"}},
		{[]string{"help", "run"}, []string{"Usage: ferry run"}},
		// Help wins over the other flags, even invalid values.
		{[]string{"sync", "--target", "nope://x", "--help"}, []string{"Usage: ferry sync"}},
	} {
		code, out, errs := ferryRun(c.args...)
		if code != exitOK || errs != "" {
			t.Errorf("%v: exit %d, stderr:\n%s", c.args, code, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: stdout lacks %q:\n%s", c.args, w, out)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		code, out, errs := ferryRun(args...)
		if code != exitOK || errs != "" || !strings.HasPrefix(out, "ferry ") || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errs)
		}
	}
	code, out, errs := ferryRun("version", "extra")
	checkFailure(t, code, out, errs, exitUsage, "extra")
}

func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"sync", "--bogus"}, []string{"-bogus", "ferry sync --help"}},
		{[]string{"migrate", "--target"}, []string{"needs an argument", "-target"}},
		{[]string{"sync", "--target", "redis://127.0.0.1:1", "extra"}, []string{"unexpected argument", "extra"}},
		{[]string{"config"}, []string{"config check -c FILE"}},
		{[]string{"config", "lint"}, []string{"lint", "config check -c FILE"}},
		{[]string{"config", "check"}, []string{"config check -c FILE"}},
		{[]string{"sync"}, []string{"source", "required"}},
		{[]string{"sync", "--source", "redis://127.0.0.1:1"}, []string{"target", "required"}},
		{[]string{"sync", "--source", "nope://127.0.0.1:1", "--target", "redis://127.0.0.1:2"}, []string{"source.addr", "unsupported scheme"}},
		{[]string{"sync", "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:1"}, []string{"target", "also the source"}},
		{[]string{"sync", "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--log-level", "loud"}, []string{"log_level", "loud"}},
		{[]string{"sync", "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--job", "bad name"}, []string{"job", "bad name"}},
		{[]string{"sync", "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--reader", "bogus"}, []string{"source.reader", "auto, psync, scan"}},
		// A password in a bad address is not echoed.
		{[]string{"sync", "--source", "redis://:s3cret-Pa55@127.0.0.1:99999", "--target", "redis://127.0.0.1:2"}, []string{"source.addr", "port"}},
	} {
		code, out, errs := ferryRun(c.args...)
		checkFailure(t, code, out, errs, exitUsage, c.want...)
		if strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: want exactly one line on stderr, got:\n%s", c.args, errs)
		}
	}
}

// TestConfigErrors: every way a job file can be wrong is exit 2 with one
// line naming the file or the key, for sync, migrate and config check alike.
func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	const target = "[target]\naddr = \"redis://127.0.0.1:6380\"\n"
	os.Unsetenv("FERRY_TEST_UNSET_VAR")
	for _, c := range []struct {
		name, content string
		want          []string
	}{
		{"unknown-key.toml", "bogus_key = 1\n" + target, []string{"unknown-key.toml", "unknown key", "bogus_key"}},
		{"unknown-nested.toml", "[target]\naddr = \"redis://127.0.0.1:6380\"\npasword = \"s3cret-Pa55\"\n", []string{"unknown key", "pasword"}},
		{"bad-value.toml", "restore = \"sometimes\"\n" + target, []string{"restore", "sometimes", "auto, always, never"}},
		{"bad-enum.toml", "target_nonempty = \"maybe\"\n" + target, []string{"target_nonempty", "maybe"}},
		{"bad-size.toml", "batch_max_bytes = \"lots\"\n" + target, []string{"batch_max_bytes", "lots"}},
		{"bad-type.toml", "batch_max_ops = \"many\"\n" + target, []string{"batch_max_ops", "whole number"}},
		{"syntax.toml", "restore = \"auto\n" + target, []string{"syntax.toml:1:"}},
		{"syntax2.toml", "[target\naddr = 1\n", []string{"syntax2.toml:2:", "table name"}},
		// An unquoted password is a syntax error that must not echo it.
		{"syntax-password.toml", "[target]\naddr = \"redis://127.0.0.1:6380\"\npassword = s3cret-Pa55\n", []string{"syntax-password.toml:3:", "quote"}},
		{"unset-env.toml", "[target]\naddr = \"redis://127.0.0.1:6380\"\npassword = \"${FERRY_TEST_UNSET_VAR}\"\n", []string{"target.password", "FERRY_TEST_UNSET_VAR", "not set"}},
		{"batch.toml", "[[job]]\nname = \"a\"\n", []string{"batch file"}},
	} {
		p := writeFile(t, dir, c.name, c.content)
		for _, cmd := range [][]string{{"sync", "-c", p}, {"migrate", "--config", p}, {"config", "check", "-c", p}} {
			want := c.want
			if c.name == "batch.toml" && cmd[0] == "config" {
				// config check takes a batch file as one and checks its jobs.
				want = []string{"job[a].mode", "required"}
			}
			t.Run(c.name+"/"+cmd[0], func(t *testing.T) {
				code, out, errs := ferryRun(cmd...)
				last := checkFailure(t, code, out, errs, exitUsage, want...)
				if !strings.HasPrefix(last, "ferry: config: ") || strings.Count(errs, "\n") != 1 || out != "" {
					t.Errorf("want one line \"ferry: config: ...\" on stderr and nothing on stdout; stdout:\n%s\nstderr:\n%s", out, errs)
				}
			})
		}
	}
	t.Run("missing-file", func(t *testing.T) {
		missing := filepath.Join(dir, "nope.toml")
		for _, cmd := range [][]string{{"sync", "-c", missing}, {"config", "check", "-c", missing}} {
			code, out, errs := ferryRun(cmd...)
			checkFailure(t, code, out, errs, exitUsage, "nope.toml", "no such file")
		}
	})
}

// TestConfigCheck: the effective configuration, secrets redacted however
// they were given.
func TestConfigCheck(t *testing.T) {
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "file-Pa55wd\n")
	rdbFile := writeFile(t, dir, "dump.rdb", "REDIS0011")
	t.Setenv("FERRY_TEST_TARGET_PW", "env-Pa55wd")
	p := writeFile(t, dir, "job.toml", `name = "orders"
restore = "never"
batch_max_bytes = "2MiB"
[source]
addr = "redis://app:s3cret-Pa55@127.0.0.1:6379"
[target]
addr = "redis://127.0.0.1:6380"
password = "${FERRY_TEST_TARGET_PW}"
`)
	code, out, errs := ferryRun("config", "check", "-c", p)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d\nstderr:\n%s", code, errs)
	}
	checkClean(t, out)
	for _, w := range []string{`name = "orders"`, `restore = "never"`, `batch_max_bytes = "2MiB"`, `fence = "multi"`,
		`addr = "redis://app:***@127.0.0.1:6379"`, `password = "***"`, `target_nonempty = "refuse"`} {
		if !strings.Contains(out, w) {
			t.Errorf("config check output lacks %q:\n%s", w, out)
		}
	}

	// Flags override the file; a password file is read, never printed.
	p2 := writeFile(t, dir, "job2.toml", fmt.Sprintf("[target]\naddr = \"redis://127.0.0.1:6380\"\npassword_file = %q\n", pwFile))
	// A password in an address on the command line gets one warning line.
	code, out, errs = ferryRun("config", "check", "-c", p2, "--source", "redis://:hunter2-xyz@127.0.0.1:7000", "--job", "imp", "--target", "127.0.0.1:7001")
	if code != exitOK || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, "ferry: warning: the password in --source is visible to other users of this host") {
		t.Fatalf("exit %d\nstderr:\n%s", code, errs)
	}
	checkClean(t, out, errs)
	for _, w := range []string{`name = "imp"`, `addr = "redis://:***@127.0.0.1:7000"`, `addr = "127.0.0.1:7001"`, "# password: from password_file"} {
		if !strings.Contains(out, w) {
			t.Errorf("config check output lacks %q:\n%s", w, out)
		}
	}

	// --rdb drops the file's source.
	p3 := writeFile(t, dir, "job3.toml", "[source]\naddr = \"redis://127.0.0.1:6379\"\n[target]\naddr = \"redis://127.0.0.1:6380\"\n")
	code, out, errs = ferryRun("config", "check", "-c", p3, "--rdb", rdbFile)
	if code != exitOK || !strings.Contains(out, fmt.Sprintf("rdb = %q", rdbFile)) || strings.Contains(out, "[source]\naddr = \"redis") {
		t.Errorf("--rdb over a file with a source: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

// TestRDBFileMissing: a missing input file is a runtime failure naming it.
func TestRDBFileMissing(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.rdb")
	code, out, errs := ferryRun("sync", "--rdb", missing, "--target", "redis://127.0.0.1:1")
	checkFailure(t, code, out, errs, exitFailure, missing, "no such file")
	// The same from a job file.
	p := writeFile(t, t.TempDir(), "job.toml", fmt.Sprintf("rdb = %q\n[target]\naddr = \"redis://127.0.0.1:1\"\n", missing))
	code, out, errs = ferryRun("sync", "-c", p)
	checkFailure(t, code, out, errs, exitFailure, missing)
	// A directory is a usage error.
	code, out, errs = ferryRun("sync", "--rdb", t.TempDir(), "--target", "redis://127.0.0.1:1")
	checkFailure(t, code, out, errs, exitUsage, "directory")
}

// TestNotBuiltSettings: settings the config accepts but sync and migrate do
// not implement yet are refused rather than silently ignored (by config check
// too, except what depends on a flag).
func TestNotBuiltSettings(t *testing.T) {
	dir := t.TempDir()
	const ends = "[source]\naddr = \"redis://127.0.0.1:6379\"\n[target]\naddr = \"redis://127.0.0.1:6380\"\n"
	for _, c := range []struct {
		name, content string
		want          []string
	}{
		{"hook", "cutover_hook = \"true\"\n" + ends, []string{"cutover_hook"}},
		{"target-db", "[source]\naddr = \"redis://127.0.0.1:6379\"\n[target]\naddr = \"redis://127.0.0.1:6380/3\"\n", []string{"target.addr", "db_map"}},
	} {
		p := writeFile(t, dir, c.name+".toml", c.content)
		for _, cmd := range []string{"sync", "migrate"} {
			code, out, errs := ferryRun(cmd, "-c", p)
			checkFailure(t, code, out, errs, exitUsage, c.want...)
		}
		code, out, errs := ferryRun("config", "check", "-c", p)
		if c.name == "hook" {
			// Valid for migrate --cutover: config check cannot know the flag.
			if code != exitOK {
				t.Errorf("%s: config check: exit %d: %s", c.name, code, errs)
			}
			continue
		}
		// config check refuses what sync and migrate refuse.
		checkFailure(t, code, out, errs, exitUsage, c.want...)
	}
}

// TestStatusAddrBusy: a status_addr the user chose and that cannot be bound
// is a configuration error (exit 2) naming the address, before anything is
// copied; for run as for sync and migrate.
func TestStatusAddrBusy(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	dir := t.TempDir()
	job := writeFile(t, dir, "job.toml", fmt.Sprintf("status_addr = %q\ndata_dir = %q\n", addr, dir))
	batch := writeFile(t, dir, "jobs.toml", fmt.Sprintf("[defaults]\nstatus_addr = %q\ndata_dir = %q\n[[job]]\nname = \"a\"\nmode = \"migrate\"\nsource = \"redis://127.0.0.1:1\"\ntarget = \"redis://127.0.0.1:2\"\n", addr, dir))
	for _, args := range [][]string{
		{"sync", "-c", job, "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2"},
		{"migrate", "-c", job, "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2"},
		{"run", "-c", batch},
	} {
		code, out, errs := ferryRun(args...)
		last := checkFailure(t, code, out, errs, exitUsage, "status_addr", addr, "address already in use", "off")
		if !strings.HasPrefix(last, "ferry: config: ") {
			t.Errorf("%s: %q", args[0], last)
		}
	}
}

// TestRunUsage: bad command lines and batch files are exit 2 with one line.
func TestRunUsage(t *testing.T) {
	dir := t.TempDir()
	const ends = "source = \"redis://127.0.0.1:1\"\ntarget = \"redis://127.0.0.1:2\"\n"
	for _, c := range []struct {
		name string
		args []string
		file string // batch file content, passed with -c
		want []string
	}{
		{"no-file", []string{"run"}, "", []string{"run -c jobs.toml"}},
		{"extra-arg", []string{"run", "jobs.toml"}, "", []string{"unexpected argument", "jobs.toml"}},
		{"bad-flag", []string{"run", "--bogus"}, "", []string{"-bogus", "ferry run --help"}},
		{"bad-level", []string{"run", "--log-level", "loud"}, "[[job]]\nname = \"a\"\nmode = \"migrate\"\n" + ends, []string{"log-level", "loud"}},
		{"bad-format", []string{"run", "--log-format", "xml"}, "[[job]]\nname = \"a\"\nmode = \"migrate\"\n" + ends, []string{`--log-format "xml" is not one of auto, console, json`}},
		{"bad-cpu-scheduling", []string{"run", "--cpu-scheduling", "fifo"}, "[[job]]\nname = \"a\"\nmode = \"migrate\"\n" + ends, []string{`--cpu-scheduling "fifo" is not one of auto, batch, normal`}},
		{"missing", []string{"run", "-c", filepath.Join(dir, "nope.toml")}, "", []string{"nope.toml", "no such file"}},
		{"no-jobs", []string{"run"}, "max_parallel = 2\n", []string{"no [[job]] tables"}},
		{"single-job-file", []string{"run"}, "job = \"x\"\n" + ends, []string{"single-job file"}},
		{"no-mode", []string{"run"}, "[[job]]\nname = \"a\"\n" + ends, []string{"job[a].mode", "required"}},
		{"bad-parallel", []string{"run"}, "max_parallel = 0\n[[job]]\nname = \"a\"\nmode = \"sync\"\n" + ends, []string{"max_parallel"}},
		{"refused", []string{"run"}, "[[job]]\nname = \"a\"\nmode = \"sync\"\nsource = \"redis://127.0.0.1:1\"\ntarget = \"redis://127.0.0.1:2/3\"\n", []string{"job[a].target.addr", "not supported"}},
		{"per-job-status", []string{"run"}, "[[job]]\nname = \"a\"\nmode = \"sync\"\nstatus_addr = \"127.0.0.1:1\"\n" + ends, []string{"status_addr"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append(args, "-c", writeFile(t, dir, c.name+".toml", c.file))
			}
			code, out, errs := ferryRun(args...)
			checkFailure(t, code, out, errs, exitUsage, c.want...)
			if strings.Count(errs, "\n") != 1 || out != "" {
				t.Errorf("want one line on stderr and nothing on stdout; stdout:\n%s\nstderr:\n%s", out, errs)
			}
		})
	}
}
