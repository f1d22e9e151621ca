package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/conf"
)

// helpFlags returns the long flags a command's --help lists, with the
// variable printed beside each ("" when none).
func helpFlags(t *testing.T, args ...string) map[string]string {
	t.Helper()
	code, out, errs := ferryRun(append(args, "--help")...)
	if code != exitOK {
		t.Fatalf("ferry %s --help: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	flags := map[string]string{}
	re := regexp.MustCompile(`(?m)^  --([a-z0-9-]+)\b.*\n\s+\t.*?(?:\[\$(FERRY_[A-Z0-9_]+)\])?$`)
	// verify prints its help on stderr.
	for _, m := range re.FindAllStringSubmatch(out+errs, -1) {
		flags[m[1]] = m[2]
	}
	if len(flags) < 3 {
		t.Fatalf("ferry %s --help lists %d flags:\n%s", strings.Join(args, " "), len(flags), out)
	}
	return flags
}

// TestEnvEveryFlag: every long flag of every command that has flags shows
// its FERRY_ variable in --help, and the README lists every variable.
func TestEnvEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{{"sync"}, {"migrate"}, {"verify"}, {"config", "check"}, {"run"}, {"plan"}} {
		for name, env := range helpFlags(t, cmd...) {
			want := "FERRY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			if env != want {
				t.Errorf("ferry %s --help: --%s shows variable %q, want %s", strings.Join(cmd, " "), name, env, want)
			}
			if !strings.Contains(string(readme), "`"+want+"`") {
				t.Errorf("README.md does not list %s (flag --%s of %s)", want, name, cmd[0])
			}
		}
	}
	for _, e := range envOnly {
		if !strings.Contains(string(readme), "`"+e.name+"`") {
			t.Errorf("README.md does not list %s", e.name)
		}
	}
}

// TestEnvPrecedence: for each job setting with a flag, the flag wins over
// the variable, the variable over the file, the file over the default, as
// config check prints the result.
func TestEnvPrecedence(t *testing.T) {
	dir := t.TempDir()
	rdbA := writeFile(t, dir, "a.rdb", "REDIS0011")
	rdbB := writeFile(t, dir, "b.rdb", "REDIS0011")
	rdbC := writeFile(t, dir, "c.rdb", "REDIS0011")
	cases := []struct {
		flag, key             string
		file, env, arg, deflt string // values; key = value lines as config check prints them
	}{
		{"job", "name", "from-file", "from-env", "from-arg", "default"},
		{"log-level", "log_level", "warn", "error", "debug", "info"},
		{"log-format", "log_format", "console", "json", "console", "auto"},
		{"data-dir", "data_dir", "/d/file", "/d/env", "/d/arg", conf.DefaultDataDir()},
		{"status-addr", "status_addr", "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:9121"},
		{"target-nonempty", "target_nonempty", "overwrite", "flush", "refuse", "refuse"},
		{"cpu-scheduling", "cpu_scheduling", "normal", "batch", "normal", "auto"},
		{"target", "addr", "127.0.0.1:1001", "127.0.0.1:1002", "127.0.0.1:1003", ""},
		{"rdb", "rdb", rdbA, rdbB, rdbC, ""},
	}
	for _, c := range cases {
		t.Run(c.flag, func(t *testing.T) {
			env := "FERRY_" + strings.ToUpper(strings.ReplaceAll(c.flag, "-", "_"))
			body := fmt.Sprintf("%s = %q\n", c.key, c.file)
			base := []string{"--rdb", rdbA, "--target", "127.0.0.1:9"}
			switch c.flag {
			case "target":
				body = fmt.Sprintf("[target]\naddr = %q\n", c.file)
				base = []string{"--rdb", rdbA}
			case "rdb":
				base = []string{"--target", "127.0.0.1:9"}
			}
			withFile := writeFile(t, t.TempDir(), "job.toml", body)
			noFile := writeFile(t, t.TempDir(), "job.toml", "")
			check := func(file, envVal, arg, want string) {
				t.Helper()
				t.Setenv(env, envVal)
				args := append([]string{"config", "check", "-c", file}, base...)
				if arg != "" {
					args = append(args, "--"+c.flag, arg)
				}
				code, out, errs := ferryRun(args...)
				if code != exitOK {
					t.Fatalf("%v with %s=%q: exit %d\n%s", args, env, envVal, code, errs)
				}
				if line := fmt.Sprintf("%s = %q\n", c.key, want); !strings.Contains(out, line) {
					t.Errorf("%v with %s=%q: want %q in\n%s", args, env, envVal, line, out)
				}
			}
			check(withFile, c.env, c.arg, c.arg)
			check(withFile, c.env, "", c.env)
			check(withFile, "", "", c.file)
			check(noFile, c.env, "", c.env)
			if c.deflt != "" {
				check(noFile, "", "", c.deflt)
			}
		})
	}
}

// TestEnvCommandFlags: the variables of command-specific flags (verify,
// migrate --cutover, run -c) act like the flags, and a bad value is one
// line naming the variable, exit 2.
func TestEnvCommandFlags(t *testing.T) {
	t.Setenv("FERRY_MODE", "bogus")
	code, out, errs := verifyCLI("--source", "127.0.0.1:1", "--target", "127.0.0.1:2")
	checkFailure(t, code, out, errs, exitUsage, `--mode "bogus" is not one of full, sample, keys`)
	// The flag wins over the variable.
	t.Setenv("FERRY_MODE", "full")
	t.Setenv("FERRY_SAMPLE", "not-a-number")
	code, out, errs = verifyCLI("--source", "127.0.0.1:1", "--target", "127.0.0.1:2", "--sample", "5")
	checkFailure(t, code, out, errs, exitUsage, "--sample applies only to --mode sample")
	code, out, errs = verifyCLI("--source", "127.0.0.1:1", "--target", "127.0.0.1:2")
	line := checkFailure(t, code, out, errs, exitUsage, "FERRY_SAMPLE: invalid value for --sample")
	if strings.Contains(line, "not-a-number") {
		t.Errorf("the error quotes the variable's value: %s", line)
	}
	t.Setenv("FERRY_SAMPLE", "")

	t.Setenv("FERRY_UNPAUSE", "true")
	code, out, errs = ferryRun("migrate", "--source", "127.0.0.1:1", "--target", "127.0.0.1:2")
	checkFailure(t, code, out, errs, exitUsage, "--unpause and --verify go with --cutover")
	t.Setenv("FERRY_UNPAUSE", "")

	t.Setenv("FERRY_PROGRESS", "sometimes")
	code, out, errs = ferryRun("sync", "--rdb", "x.rdb", "--target", "127.0.0.1:2")
	checkFailure(t, code, out, errs, exitUsage, `--progress "sometimes" is not one of auto, bar, line, off`)
	t.Setenv("FERRY_PROGRESS", "")

	// run: FERRY_CONFIG names the batch file; -c on the command line wins.
	t.Setenv("FERRY_CONFIG", "/nonexistent/env.toml")
	code, out, errs = ferryRun("run")
	checkFailure(t, code, out, errs, exitUsage, "/nonexistent/env.toml")
	code, out, errs = ferryRun("run", "-c", "/nonexistent/arg.toml")
	checkFailure(t, code, out, errs, exitUsage, "/nonexistent/arg.toml")
}
