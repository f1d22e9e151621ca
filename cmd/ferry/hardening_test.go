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

	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestVerifyReportPrivate: the report (values of both sides) is readable by
// its owner only, and a symlink at its path is replaced, not followed.
func TestVerifyReportPrivate(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	src.Client(t).Set(context.Background(), "k", "secret-value", 0)
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(dir, "report.json")
	if err := os.Symlink(victim, rep); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--source", src.URL(), "--target", dst.URL(), "--log-level", "warn", "--rounds", "1"}
	code, out, errs := verifyCLI(append(flags, "--report", rep)...)
	if code != exitFailure || !strings.Contains(errs, "differ") {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "untouched" {
		t.Errorf("the symlink's target was written: %q %v", b, err)
	}
	st, err := os.Lstat(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("report %s: mode %s, want a regular file 0600", rep, st.Mode())
	}
	if b, _ := os.ReadFile(rep); !strings.Contains(string(b), `"k"`) {
		t.Errorf("report:\n%s", b)
	}
	// A new report, and one over an existing file, are 0600 too; nothing
	// else is left in the directory.
	os.WriteFile(filepath.Join(dir, "old.json"), []byte("{}"), 0o644)
	for _, name := range []string{"new.json", "old.json"} {
		p := filepath.Join(dir, name)
		if code, out, errs := verifyCLI(append(flags, "--report", p)...); code != exitFailure {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, st.Mode(), err)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 4 {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want victim, report.json, new.json, old.json", names)
	}
}

// TestJobNameRefused: a job name that would leave data_dir, hold a path
// separator or be very long is refused with one line showing at most a
// prefix of it.
func TestJobNameRefused(t *testing.T) {
	long := strings.Repeat("j", 200)
	for _, name := range []string{"..", ".", "a/b", "../x", long} {
		code, out, errs := ferryRun("sync", "--job", name, "--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2")
		last := checkFailure(t, code, out, errs, exitUsage, "is not a valid job name")
		if strings.Count(strings.TrimSpace(errs), "\n") > 0 {
			t.Errorf("--job %.20q: more than one line:\n%s", name, errs)
		}
		if strings.Contains(last, long) || len(last) > 200 {
			t.Errorf("--job of %d bytes: the error echoes all of it: %q", len(name), last)
		}
	}
}

// TestRedissToPlainServer: rediss:// to a redis-server without TLS fails
// within seconds (the dial timeout, 5 s by default) with a line that says
// what to check — source, target and verify.
func TestRedissToPlainServer(t *testing.T) {
	redistest.Require(t)
	plain, other := redistest.Start(t), redistest.Start(t)
	tlsURL := "rediss://" + plain.Addr
	want := "TLS handshake failed — is TLS enabled on " + plain.Addr + "?"
	for _, c := range []struct {
		name string
		args []string
	}{
		{"migrate source", []string{"migrate", "-c", jobFile(t, ""), "--source", tlsURL, "--target", other.URL()}},
		{"sync target", []string{"sync", "-c", jobFile(t, ""), "--source", other.URL(), "--target", tlsURL}},
		{"verify source", []string{"verify", "--source", tlsURL, "--target", other.URL(), "--log-level", "error"}},
		{"verify target", []string{"verify", "--source", other.URL(), "--target", tlsURL, "--log-level", "error"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := ferryRunWithin(t, 60*time.Second, c.args...)
			took := time.Since(start)
			checkFailure(t, code, out, errs, exitFailure, want)
			if took > 10*time.Second {
				t.Errorf("failed after %s, want within 10 s", took.Round(time.Millisecond))
			}
			t.Logf("%s: %q after %s", c.name, lastLine(errs), took.Round(time.Millisecond))
		})
	}
}

// TestInsecureSkipVerifyWarns: insecure_skip_verify is never silent: a
// warning for each connection it affects.
func TestInsecureSkipVerifyWarns(t *testing.T) {
	redistest.Require(t)
	certs := redistest.NewCerts(t)
	src := redistest.StartTLS(t, certs, "--tls-auth-clients", "no")
	dst := redistest.StartTLS(t, certs, "--tls-auth-clients", "no")
	src.Client(t).Set(context.Background(), "k", "v", 0)
	ends := fmt.Sprintf("[source]\naddr = %q\n[source.tls]\ninsecure_skip_verify = true\n[target]\naddr = %q\n[target.tls]\ninsecure_skip_verify = true\n",
		redistest.TLSURL(src), redistest.TLSURL(dst))
	code, out, errs := ferryRunWithin(t, 60*time.Second, "migrate", "-c", jobFile(t, ends))
	if code != exitOK {
		t.Fatalf("migrate: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkInsecureWarnings(t, "migrate", errs)
	cfg := writeFile(t, t.TempDir(), "v.toml", "log_format = \"json\"\n"+ends)
	code, out, errs = ferryRunWithin(t, 60*time.Second, "verify", "-c", cfg)
	if code != exitOK {
		t.Fatalf("verify: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkInsecureWarnings(t, "verify", errs)
}

func checkInsecureWarnings(t *testing.T, cmd, log string) {
	t.Helper()
	for _, role := range []string{"source", "target"} {
		n := 0
		for _, l := range strings.Split(log, "\n") {
			if strings.Contains(l, `"level":"warn"`) && strings.Contains(l, role+": insecure_skip_verify is on") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d warnings about the %s's insecure_skip_verify, want 1:\n%s", cmd, n, role, log)
		}
	}
}

// TestCutoverHookOutlivingSh: a hook whose child outlives sh and would
// switch the application after the pause: migrate fails with one line
// naming cutover_hook (not its command), and the child never acts.
func TestCutoverHookOutlivingSh(t *testing.T) {
	redistest.Require(t)
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 50, Seed: 52})
	dir := t.TempDir()
	hook := "(sleep 5; touch " + dir + "/switched) & echo $! > " + dir + "/pid; wait"
	cfg := jobFile(t, fmt.Sprintf("cutover_pause_max = \"2s\"\ncutover_hook = %q\n", hook))
	code, out, errs := ferryRunWithin(t, 60*time.Second, "migrate", "-c", cfg, "--source", src.URL(), "--target", dst.URL(), "--cutover")
	last := checkFailure(t, code, out, errs, exitFailure, "cutover_hook: timed out", "unpaused")
	if strings.Contains(errs, "sleep") {
		t.Errorf("the hook's command is shown:\n%s", errs)
	}
	t.Log(last)
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] != 'Z' {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("the hook's child %d still runs after migrate returned", pid)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "switched")); err == nil {
		t.Error("the hook's child switched the application")
	}
}

// TestVerifyReportDirectory: a directory at --report is refused before the
// comparison.
func TestVerifyReportDirectory(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := verifyCLI("--source", "redis://127.0.0.1:1", "--target", "redis://127.0.0.1:2", "--report", dir)
	checkFailure(t, code, out, errs, exitUsage, "--report "+dir+": is a directory")
}
