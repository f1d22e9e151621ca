package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// authClient is a client of s with a password.
func authClient(t *testing.T, s *redistest.Server, pw string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: pw, MaxRetries: -1})
	t.Cleanup(func() { c.Close() })
	return c
}

// requirePass makes s ask for pw; it returns a client that has it.
func requirePass(t *testing.T, s *redistest.Server, pw string) *redis.Client {
	t.Helper()
	s.Do(t, "CONFIG", "SET", "requirepass", pw)
	c := authClient(t, s, pw)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("%s with requirepass: %v", s.Addr, err)
	}
	return c
}

// userKeys is the number of keys of db 0 that are not ferry's own.
func userKeys(c *redis.Client) int64 {
	ctx := context.Background()
	own, _ := c.Eval(ctx, `return #redis.call("KEYS", "__ferry:*")`, nil).Int64()
	return c.DBSize(ctx).Val() - own
}

// cmdline is the argument list of a running process, as other users of the
// host see it.
func cmdline(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		t.Fatalf("cmdline of pid %d: %v", pid, err)
	}
	return strings.ReplaceAll(string(b), "\x00", " ")
}

// TestPasswordsWithoutArgv: against servers with requirepass, the source's
// and target's passwords given as FERRY_*_PASSWORD (with and without a
// config file) or --*-password-file reach the servers, the running ferry's
// argv holds no password, and the precedence is flag > environment > file.
func TestPasswordsWithoutArgv(t *testing.T) {
	t.Parallel()
	const srcPw, dstPw, wrong = "s3cret-Pa55", "hunter2-xyz", "wr0ng-Pa55"
	src := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, DBs: []int{0}, Seed: 3})
	want := sc.DBSize(context.Background()).Val()
	srcAuth := requirePass(t, src, srcPw)
	// An ACL user besides the default one, for the _USERNAME variables.
	const user, userPw = "ferry-u", "hunter2-xyz"
	aclUser := []any{"ACL", "SETUSER", user, "on", ">" + userPw, "~*", "&*", "+@all"}
	if err := srcAuth.Do(context.Background(), aclUser...).Err(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	srcFile := writeFile(t, dir, "src.pw", srcPw+"\n")
	dstFile := writeFile(t, dir, "dst.pw", dstPw+"\n")
	for _, f := range []string{srcFile, dstFile} {
		if err := os.Chmod(f, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wrongFile := jobFile(t, fmt.Sprintf("[source]\npassword = %q\n[target]\npassword = %q\n", wrong, wrong))
	rightFile := jobFile(t, fmt.Sprintf("[source]\npassword = %q\n[target]\npassword = %q\n", srcPw, dstPw))
	base := func(job string) []string {
		return []string{"FERRY_JOB=" + job, "FERRY_STATUS_ADDR=off", "FERRY_LOG_FORMAT=json", "FERRY_DATA_DIR=" + filepath.Join(dir, job)}
	}

	var targets []*redistest.Server
	for _, c := range []struct {
		name string
		env  []string
		args []string
	}{
		{"env-no-file", []string{"FERRY_SOURCE_PASSWORD=" + srcPw, "FERRY_TARGET_PASSWORD=" + dstPw}, nil},
		// The environment wins over the file.
		{"env-over-file", []string{"FERRY_SOURCE_PASSWORD=" + srcPw, "FERRY_TARGET_PASSWORD=" + dstPw}, []string{"-c", wrongFile}},
		// The flag wins over the environment and the file.
		{"file-flags", []string{"FERRY_SOURCE_PASSWORD=" + wrong, "FERRY_TARGET_PASSWORD=" + wrong},
			[]string{"-c", wrongFile, "--source-password-file", srcFile, "--target-password-file", dstFile}},
		// The password file flags as variables.
		{"file-vars", []string{"FERRY_SOURCE_PASSWORD_FILE=" + srcFile, "FERRY_TARGET_PASSWORD_FILE=" + dstFile}, nil},
		// ACL users from the environment, over a file that names none.
		{"user-vars", []string{"FERRY_SOURCE_USERNAME=" + user, "FERRY_SOURCE_PASSWORD=" + userPw,
			"FERRY_TARGET_USERNAME=" + user, "FERRY_TARGET_PASSWORD=" + userPw}, []string{"-c", wrongFile}},
	} {
		dst := redistest.Start(t) // compared with the source at the end
		targets = append(targets, dst)
		t.Run(c.name, func(t *testing.T) {
			dc := requirePass(t, dst, dstPw)
			if err := dc.Do(context.Background(), aclUser...).Err(); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"sync", "--source", src.URL(), "--target", dst.URL()}, c.args...)
			p := startFerryEnv(t, append(base(c.name), c.env...), args...)
			redistest.WaitFor(t, time.Minute, func() bool {
				select {
				case <-p.done:
					return true
				default:
				}
				return userKeys(dc) == want
			}, "the source's %d keys on the target", want)
			argv := cmdline(t, p.cmd.Process.Pid)
			for _, pw := range []string{srcPw, dstPw} {
				if strings.Contains(argv, pw) {
					t.Errorf("the argv of ferry holds a password: %s", argv)
				}
			}
			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			code, out, errs := p.wait(t, time.Minute)
			if code != exitOK {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
			}
			checkClean(t, out, errs)
			if strings.Contains(errs, "visible to other users") || strings.Contains(errs, "readable by every user") {
				t.Errorf("a warning without a reason:\n%s", errs)
			}
			dc.ConfigSet(context.Background(), "requirepass", "")
		})
	}

	// The file below the environment: a wrong variable fails even though
	// the file is right; a world-readable password file is warned about.
	dst := redistest.Start(t)
	requirePass(t, dst, dstPw)
	p := startFerryEnv(t, append(base("env-wrong"), "FERRY_SOURCE_PASSWORD="+wrong, "FERRY_TARGET_PASSWORD="+dstPw), "migrate", "-c", rightFile, "--source", src.URL(), "--target", dst.URL())
	code, out, errs := p.wait(t, time.Minute)
	checkFailure(t, code, out, errs, exitFailure, src.Addr, "authentication failed")

	if err := os.Chmod(srcFile, 0o644); err != nil {
		t.Fatal(err)
	}
	p = startFerryEnv(t, append(base("world-readable"), "FERRY_TARGET_PASSWORD="+dstPw), "migrate", "--source-password-file", srcFile, "--source", src.URL(), "--target", dst.URL())
	code, out, errs = p.wait(t, time.Minute)
	if code != exitOK || !strings.Contains(errs, "the source password file "+srcFile+" is readable by every user of this host") {
		t.Errorf("migrate with a 0644 password file: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkClean(t, out, errs)

	srcAuth.ConfigSet(context.Background(), "requirepass", "")
	for _, d := range targets {
		redistest.AssertSameData(t, []string{src.Addr}, []string{d.Addr}, false, false)
	}
}

// TestStripUserinfo: a password or user given at a higher level is taken
// out of the address it overrides.
func TestStripUserinfo(t *testing.T) {
	for _, c := range []struct {
		in       string
		pw, user bool
		want     string
	}{
		{"redis://u:p@h:1", true, false, "redis://u:@h:1"},
		{"redis://:p@h:1", true, false, "redis://h:1"},
		{"redis://p@h:1", true, false, "redis://h:1"},
		{"u:p@h:1", true, false, "u:@h:1"},
		{"redis://u:p@h:1", false, true, "redis://:p@h:1"},
		{"redis://u:@h:1", false, true, "redis://h:1"},
		{"rediss://u:p@h:1", true, true, "rediss://h:1"},
		{"redis://h:1", true, true, "redis://h:1"},
		{"sentinel://:p@s1,s2/m", true, false, "sentinel://s1,s2/m"},
	} {
		if got := stripUserinfo(c.in, c.pw, c.user); got != c.want {
			t.Errorf("stripUserinfo(%q, %v, %v) = %q, want %q", c.in, c.pw, c.user, got, c.want)
		}
	}
}
