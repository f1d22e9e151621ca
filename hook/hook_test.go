package hook

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gone reports whether the process pid no longer runs (absent or a zombie
// nobody reaped).
func gone(t *testing.T, pid int) bool {
	t.Helper()
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	_, state, ok := parseStat(b)
	return ok && (state == 'Z' || state == 'X')
}

// readPid reads the pid a hook wrote to path.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("pid file %q: %v", b, err)
	}
	return pid
}

// outliving is a hook whose child outlives sh: it records the child's pid
// in dir/pid, and dir/switched appears after 3 s unless the child is
// stopped. before runs first (a trap, say); after ends sh.
func outliving(dir, before, after string) string {
	return before + "(sleep 3; touch " + dir + "/switched) & echo $! > " + dir + "/pid; " + after
}

// checkChildGone asserts the hook's child is gone when Run has returned,
// so that its side effect can never happen.
func checkChildGone(t *testing.T, dir string) {
	t.Helper()
	pid := readPid(t, filepath.Join(dir, "pid"))
	if !gone(t, pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the hook's child %d still runs after Run returned", pid)
	}
	if _, err := os.Stat(filepath.Join(dir, "switched")); err == nil {
		t.Error("the hook's child acted")
	}
}

func checkErr(t *testing.T, err error, cmd string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cutover_hook: ") || strings.Contains(msg, "\n") {
		t.Errorf("error %q: want one line starting with cutover_hook", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, "sleep") || strings.Contains(msg, cmd) {
		t.Errorf("error %q shows the command", msg)
	}
}

// waitFile waits (on a loaded machine) until the hook wrote path.
func waitFile(t *testing.T, path string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never appeared", path)
}

// TestTimeoutEndsGroup: a hook still running at its deadline, whose child
// would act later, is ended with its child.
func TestTimeoutEndsGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := outliving(dir, "", "touch "+dir+"/started; wait")
	dctx, dcancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer dcancel()
	err := Run(dctx, Spec{Name: "cutover_hook", Command: cmd})
	checkErr(t, err, cmd, "timed out")
	checkChildGone(t, dir)
}

// TestStopEndsGroup: ferry's stop (a cancelled context) ends the hook and
// its child.
func TestStopEndsGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := outliving(dir, "", "touch "+dir+"/started; wait")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- Run(ctx, Spec{Name: "cutover_hook", Command: cmd}) }()
	waitFile(t, filepath.Join(dir, "started"))
	cancel()
	checkErr(t, <-errc, cmd, "interrupted")
	checkChildGone(t, dir)
}

// TestFailureEndsGroup: a hook that fails leaves no child behind, and the
// error gives the exit status.
func TestFailureEndsGroup(t *testing.T) {
	dir := t.TempDir()
	cmd := outliving(dir, "", "exit 3")
	err := Run(context.Background(), Spec{Name: "cutover_hook", Command: cmd})
	checkErr(t, err, cmd, "exited with status 3")
	checkChildGone(t, dir)
}

// TestSuccessEndsLeftovers: what a successful hook leaves running in its
// group is ended too: nothing of the hook acts after it returned.
func TestSuccessEndsLeftovers(t *testing.T) {
	dir := t.TempDir()
	cmd := outliving(dir, "", "exit 0")
	if err := Run(context.Background(), Spec{Name: "cutover_hook", Command: cmd}); err != nil {
		t.Fatal(err)
	}
	checkChildGone(t, dir)
}

// TestSIGTERMIgnored: a group that ignores SIGTERM gets SIGKILL after the
// grace period.
func TestSIGTERMIgnored(t *testing.T) {
	dir := t.TempDir()
	cmd := outliving(dir, "trap '' TERM; ", "touch "+dir+"/started; wait")
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Spec{Name: "cutover_hook", Command: cmd, Grace: 200 * time.Millisecond})
	}()
	waitFile(t, filepath.Join(dir, "started"))
	cancel()
	checkErr(t, <-errc, cmd, "interrupted")
	checkChildGone(t, dir)
}

func TestSignalled(t *testing.T) {
	err := Run(context.Background(), Spec{Name: "cutover_hook", Command: "kill -TERM $$"})
	checkErr(t, err, "kill -TERM", "killed by signal SIGTERM")
}

// shellVars are variables the shell itself may set in its environment.
var shellVars = map[string]bool{"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true}

// TestEnvMinimal: the hook sees PATH, HOME, ferry's variables and the
// names passed through, nothing else of ferry's environment (passwords).
func TestEnvMinimal(t *testing.T) {
	t.Setenv("FERRY_TARGET_PASSWORD", "hunter2-xyz")
	t.Setenv("FERRY_SOURCE_PASSWORD", "s3cret-Pa55")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "nope")
	t.Setenv("PASSED_ON", "yes")
	t.Setenv("HOME", "/home/ferry-test")
	dir := t.TempDir()
	out := filepath.Join(dir, "env")
	err := Run(context.Background(), Spec{Name: "cutover_hook", Command: "env > " + out,
		Vars: []string{"FERRY_JOB=orders", "FERRY_CUTOVER_OFFSETS=1,2"},
		Pass: []string{"PASSED_ON", "NOT_SET", "FERRY_JOB"}})
	if err != nil {
		t.Fatal(err)
	}
	got := readEnv(t, out)
	want := map[string]string{"PATH": os.Getenv("PATH"), "HOME": "/home/ferry-test", "PASSED_ON": "yes",
		"FERRY_JOB": "orders", "FERRY_CUTOVER_OFFSETS": "1,2"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("hook sees %s=%q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && !shellVars[k] {
			t.Errorf("hook sees %s, which is outside the documented set", k)
		}
	}
}

func readEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			m[k] = v
		}
	}
	return m
}

func TestParseStat(t *testing.T) {
	pg, st, ok := parseStat([]byte("123 (a b) c)) S 1 456 456 0 -1"))
	if !ok || pg != 456 || st != 'S' {
		t.Errorf("parseStat = %d %c %v", pg, st, ok)
	}
}

func TestNoTimeLeft(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), -time.Second)
	defer cancel()
	err := Run(ctx, Spec{Name: "cutover_hook", Command: "touch " + dir + "/ran"})
	checkErr(t, err, "touch", "not run")
	if _, serr := os.Stat(filepath.Join(dir, "ran")); serr == nil {
		t.Error("the hook ran")
	}
}
