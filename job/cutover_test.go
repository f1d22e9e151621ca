package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// writable reports whether a write to s completes within d (a paused source
// holds writes back).
func writable(t *testing.T, s *redistest.Server, d time.Duration) bool {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 2, DisableIdentity: true, ReadTimeout: d, MaxRetries: -1})
	defer c.Close()
	return c.Set(context.Background(), "probe:writable", "1", 0).Err() == nil
}

func TestCutoverUnderLoad(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	redistest.FillAllTypes(t, sc, redistest.FillOptions{Keys: 200, Seed: 41})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runLoadOpts(ctx, t, sc, true)

	hookOut := filepath.Join(t.TempDir(), "hook.log")
	var ready atomic.Bool
	var refused atomic.Bool
	co := &Cutover{
		PauseMax: 8 * time.Second,
		Hook:     "echo \"$FERRY_JOB $FERRY_CUTOVER_OFFSETS\" >> " + hookOut,
		Ready: func(CutoverReport) {
			ready.Store(true)
			refused.Store(!writable(t, src, 300*time.Millisecond))
		},
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer rcancel()
	sum, err := Run(rctx, Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Cutover: co, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !ready.Load() || !sum.CaughtUp {
		t.Fatal("the cutover never got ready")
	}
	if !refused.Load() {
		t.Error("the source took writes after \"cutover ready\"")
	}
	// Still paused: source and target hold the same, frozen data.
	redistest.AssertSameData(t, []string{src.Addr}, []string{dst.Addr}, false, false)
	b, err := os.ReadFile(hookOut)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "default ") {
		t.Errorf("hook output %q: want one line", b)
	}
	if writable(t, src, 200*time.Millisecond) {
		t.Error("the source took writes before cutover_pause_max ran out (no --unpause)")
	}
	cancel()
}

func TestCutoverUnpause(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 50, Seed: 42})
	co := &Cutover{PauseMax: 20 * time.Second, Unpause: true}
	if _, err := Run(context.Background(), Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Cutover: co, Log: testLog(t)}); err != nil {
		t.Fatal(err)
	}
	if !writable(t, src, time.Second) {
		t.Error("the source is still paused after a cutover with unpause")
	}
}

// TestCutoverFailsSafely: a target connection killed while the cutover waits
// for the target aborts it, with the source unpaused.
func TestCutoverFailsSafely(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	sc := src.Client(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runLoadOpts(ctx, t, sc, true)
	// Once the source is paused, the target turns slow (so that the cutover
	// has something to wait for) and ferry's target connections are killed.
	var slowNow atomic.Bool
	slow := func(ctx context.Context, ops, bytes int) error {
		if slowNow.Load() {
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	}
	co := &Cutover{PauseMax: 30 * time.Second}
	co.paused = func() {
		slowNow.Store(true)
		if n := dst.KillClients(t, "ferry-writer-"); n == 0 {
			t.Error("no writer connection to kill")
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Cutover: co,
			Log: testLog(t), throttle: slow})
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(90 * time.Second):
		t.Fatal("migrate with cutover did not end")
	}
	if !errors.Is(err, ErrCutover) {
		t.Fatalf("want a cutover failure, got %v", err)
	}
	if !strings.Contains(err.Error(), "unpaused") {
		t.Errorf("the error does not say the source was unpaused: %v", err)
	}
	if !writable(t, src, time.Second) {
		t.Error("the source stayed paused after a failed cutover")
	}
}

func TestPauseSupported(t *testing.T) {
	for v, want := range map[string]bool{"6.0.16": false, "6.2.0": true, "7.0.15": true, "5.0.7": false, "8.0.1": true, "x": false} {
		if got := pauseSupported(v); got != want {
			t.Errorf("pauseSupported(%q) = %v", v, got)
		}
	}
}

// TestCutoverHookEnded: a hook whose child outlives sh and would switch the
// application after the pause ran out fails the cutover, and the child is
// gone before the source is unpaused: the switch never happens. The hook
// sees only the documented environment, even when ferry's own holds
// passwords.
func TestCutoverHookEnded(t *testing.T) {
	redistest.Require(t)
	t.Setenv("FERRY_TARGET_PASSWORD", "hunter2-xyz")
	t.Setenv("FERRY_SOURCE_PASSWORD", "s3cret-Pa55")
	t.Setenv("SOME_TOKEN", "nope")
	t.Setenv("PASSED_ON", "yes")
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 50, Seed: 43})
	dir := t.TempDir()
	co := &Cutover{
		PauseMax: 3 * time.Second,
		Hook:     "env > " + dir + "/env; (sleep 6; touch " + dir + "/switched) & echo $! > " + dir + "/pid; wait",
		HookEnv:  []string{"PASSED_ON"},
	}
	_, err := Run(context.Background(), Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Cutover: co, Log: testLog(t)})
	if !errors.Is(err, ErrCutover) {
		t.Fatalf("want a cutover failure, got %v", err)
	}
	msg := err.Error()
	t.Logf("cutover error: %v", msg)
	for _, w := range []string{"cutover_hook", "timed out", "unpaused"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not say %q", msg, w)
		}
	}
	if strings.Contains(msg, "sleep") {
		t.Errorf("error %q shows the command", msg)
	}
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		t.Fatalf("the hook did not run: %v", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if pid <= 0 || processRuns(pid) {
		t.Errorf("the hook's child %d still runs after the cutover failed", pid)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if _, err := os.Stat(filepath.Join(dir, "switched")); err == nil {
		t.Error("the hook's child switched the application")
	}
	if !writable(t, src, time.Second) {
		t.Error("the source stayed paused after a failed cutover")
	}
	b, err = os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"PATH": true, "HOME": true, "PASSED_ON": true, "FERRY_JOB": true,
		"FERRY_CUTOVER_OFFSETS": true, "FERRY_CUTOVER_WAIT_MS": true,
		"PWD": true, "OLDPWD": true, "SHLVL": true, "_": true} // the last four: set by the shell itself
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if k, _, _ := strings.Cut(line, "="); !allowed[k] {
			t.Errorf("the hook sees %q, outside the documented set", line)
		}
	}
	if !strings.Contains(string(b), "PASSED_ON=yes\n") || !strings.Contains(string(b), "FERRY_JOB=default\n") {
		t.Errorf("the hook's environment lacks PASSED_ON or FERRY_JOB:\n%s", b)
	}
}

// processRuns reports whether pid runs (a zombie nobody reaps does not).
func processRuns(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// TestCutoverHookTimeout: cutover_hook_timeout ends a hung hook long
// before the pause would run out, and the source is unpaused then.
func TestCutoverHookTimeout(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 20, Seed: 44})
	co := &Cutover{PauseMax: 60 * time.Second, HookTimeout: time.Second, Hook: "sleep 120 & wait"}
	var pausedAt time.Time
	co.paused = func() { pausedAt = time.Now() }
	_, err := Run(context.Background(), Options{Conf: testConf(t, src.URL(), dst.URL()), Migrate: true, Cutover: co, Log: testLog(t)})
	if !errors.Is(err, ErrCutover) || !strings.Contains(err.Error(), "cutover_hook: timed out") || !strings.Contains(err.Error(), "cutover_hook_timeout 1s") {
		t.Fatalf("want a cutover_hook timeout naming cutover_hook_timeout, got %v", err)
	}
	if d := time.Since(pausedAt); d > 30*time.Second {
		t.Errorf("the source stayed paused %s: the hook ran to the pause's end", d)
	}
	if !writable(t, src, time.Second) {
		t.Error("the source stayed paused after the hook timed out")
	}
}

// TestStopDuringCutoverWait: a stop while the source is paused and the
// cutover waits for a target that has stopped answering. The job ends
// within StopTimeout (plus a margin for a loaded machine), as a failure,
// and the source is unpaused at once, not when cutover_pause_max runs out.
func TestStopDuringCutoverWait(t *testing.T) {
	redistest.Require(t)
	src := redistest.Start(t)
	dst := redistest.Start(t)
	px := redistest.NewProxy(t, dst.Addr)
	sc := src.Client(t)
	lctx, stopLoad := context.WithCancel(context.Background())
	defer stopLoad()
	runLoadOpts(lctx, t, sc, true)

	co := &Cutover{PauseMax: 60 * time.Second}
	paused := make(chan struct{})
	co.paused = func() {
		// The cutover then waits on the target: for the writes the load
		// made just before the pause, and for a round trip on every
		// connection, neither of which a frozen target gives.
		px.Freeze()
		close(paused)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const stopTimeout = 2 * time.Second
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{Conf: testConf(t, src.URL(), px.URL()), Migrate: true, Cutover: co,
			Log: testLog(t), StopTimeout: stopTimeout})
		done <- err
	}()
	select {
	case <-paused:
	case err := <-done:
		t.Fatalf("migrate ended before the cutover paused the source: %v", err)
	case <-time.After(90 * time.Second):
		t.Fatal("the cutover never paused the source")
	}
	stopLoad()
	time.Sleep(200 * time.Millisecond) // into the wait
	start := time.Now()
	cancel()
	var err error
	select {
	case err = <-done:
	case <-time.After(stopTimeout + 10*time.Second):
		t.Fatalf("still running %s after the stop (stop_timeout %s)", time.Since(start), stopTimeout)
	}
	took := time.Since(start)
	if took > stopTimeout+5*time.Second {
		t.Errorf("stopped after %s with stop_timeout %s", took, stopTimeout)
	}
	if err == nil {
		t.Fatal("a migrate stopped during its cutover reported success")
	}
	t.Logf("stopped in %s: %v", took.Round(time.Millisecond), err)
	if !writable(t, src, time.Second) {
		t.Error("the source stayed paused after the stop")
	}
}
