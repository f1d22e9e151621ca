package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
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
			Log: testLog(t), Throttle: slow})
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
