package throttle

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// grant is one Wait that returned: when, and how much it was for.
type grant struct {
	at         time.Time
	ops, bytes int
}

// measure runs workers that each call Wait(ops, bytes) in a loop for warm+
// window, and returns the ops and bytes per second granted in the window:
// the slope of the ops (bytes) granted so far against time, over the grants
// of the window (a least-squares fit: the initial burst is before the
// window, and neither where the window's edges fall between two grants nor
// grants that come in clusters, as parts of big requests of several writers
// do, skews it).
func measure(t *testing.T, l *Limiter, workers, ops, bytes int, warm, window time.Duration) (opsRate, bytesRate float64, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu     sync.Mutex
		grants []grant
		wg     sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := l.Wait(ctx, ops, bytes); err != nil {
					if ctx.Err() == nil {
						t.Errorf("Wait: %v", err)
					}
					return
				}
				mu.Lock()
				grants = append(grants, grant{time.Now(), ops, bytes})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(warm + window)
	cancel()
	wg.Wait()
	from, to := start.Add(warm), start.Add(warm+window)
	var in []grant
	for _, g := range grants {
		if !g.at.Before(from) && !g.at.After(to) {
			in = append(in, g)
		}
	}
	if len(in) < 2 {
		return 0, 0, len(in)
	}
	xs := make([]float64, len(in))
	ys, zs := make([]float64, len(in)), make([]float64, len(in))
	var cumOps, cumBytes float64
	for i, g := range in {
		cumOps += float64(g.ops)
		cumBytes += float64(g.bytes)
		xs[i], ys[i], zs[i] = g.at.Sub(in[0].at).Seconds(), cumOps, cumBytes
	}
	return slope(xs, ys), slope(xs, zs), len(in)
}

// slope is the least-squares slope of y against x.
func slope(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var cov, vx float64
	for i := range x {
		cov += (x[i] - mx) * (y[i] - my)
		vx += (x[i] - mx) * (x[i] - mx)
	}
	return cov / vx
}

// within checks a granted rate: never above the limit (+10% for the
// window's edges) — what a rate limit promises — and, as a sanity check
// only, not far below it: on a loaded machine the workers are not
// scheduled as often as the bucket allows, so the lower bound is loose.
func within(t *testing.T, what string, got, want float64) {
	t.Helper()
	switch {
	case got > want*1.10:
		t.Errorf("%s: %.0f/s granted, above the limit %.0f/s (+10%%)", what, got, want)
	case got < want*0.5:
		t.Errorf("%s: %.0f/s granted, under half the limit %.0f/s", what, got, want)
	default:
		t.Logf("%s: %.0f/s granted (limit %.0f/s)", what, got, want)
	}
}

const (
	warm   = 300 * time.Millisecond
	window = 3 * time.Second
)

func TestRates(t *testing.T) {
	cases := []struct {
		name      string
		ops       int
		bytes     int64
		workers   int
		reqOps    int
		reqBytes  int
		wantOps   float64 // 0: not checked
		wantBytes float64
		minGrants int
	}{
		// Small flights, several writers sharing the limit.
		{name: "ops", ops: 2000, workers: 4, reqOps: 10, wantOps: 2000, minGrants: 400},
		// Flights bigger than the burst (200 ops): split, still the rate.
		{name: "ops above burst", ops: 2000, workers: 3, reqOps: 700, wantOps: 2000, minGrants: 6},
		{name: "bytes", bytes: 4 << 20, workers: 4, reqOps: 1, reqBytes: 100 << 10, wantBytes: 4 << 20, minGrants: 100},
		// 1 MiB flights against a burst of 410 KiB.
		{name: "bytes above burst", bytes: 4 << 20, workers: 2, reqOps: 1, reqBytes: 1 << 20, wantBytes: 4 << 20, minGrants: 10},
		// Both limits: the tighter one (bytes: 200 flights/s) holds.
		{name: "both, bytes tighter", ops: 5000, bytes: 200 * 1000, workers: 3, reqOps: 5, reqBytes: 1000, wantOps: 1000, wantBytes: 200 * 1000, minGrants: 400},
		// Both limits: ops tighter (100 flights/s).
		{name: "both, ops tighter", ops: 1000, bytes: 1 << 30, workers: 3, reqOps: 10, reqBytes: 1 << 20, wantOps: 1000, minGrants: 200},
	}
	res := make([]struct {
		ops, bytes float64
		n          int
	}, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		// The cases run at once (t.Parallel would run only GOMAXPROCS of
		// them at a time), each with its own limiter.
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &res[i]
			r.ops, r.bytes, r.n = measure(t, New(c.ops, c.bytes), c.workers, c.reqOps, c.reqBytes, warm, window)
		}()
	}
	wg.Wait()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ops, bytes, n := res[i].ops, res[i].bytes, res[i].n
			if n < c.minGrants {
				t.Errorf("%d grants in the window, want at least %d", n, c.minGrants)
			}
			if c.wantOps > 0 {
				within(t, "ops", ops, c.wantOps)
			}
			if c.wantBytes > 0 {
				within(t, "bytes", bytes, c.wantBytes)
			}
		})
	}
}

func TestUnlimited(t *testing.T) {
	if New(0, 0) != nil || New(-1, -5) != nil {
		t.Fatal("New(0, 0) must be nil: no limit")
	}
	var nilL *Limiter
	if err := nilL.Wait(context.Background(), 1<<30, 1<<30); err != nil {
		t.Fatal(err)
	}
	if o, b := nilL.Rates(); o != 0 || b != 0 {
		t.Fatal("nil Rates")
	}
	// A dimension at 0 is unlimited: a limited one would need years for
	// this and fail at once against the deadline.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := New(0, 1000).Wait(ctx, 1<<30, 10); err != nil {
		t.Fatalf("ops unlimited: %v", err)
	}
	if err := New(10, 0).Wait(ctx, 1, math.MaxInt32); err != nil {
		t.Fatalf("bytes unlimited: %v", err)
	}
	if err := New(10, 0).Wait(ctx, 0, 0); err != nil {
		t.Fatalf("empty request: %v", err)
	}
	if o, b := New(7, 0).Rates(); o != 7 || b != 0 {
		t.Fatalf("Rates = %v, %v", o, b)
	}
}

func TestCancel(t *testing.T) {
	l := New(10, 0) // burst 1
	bg := context.Background()
	if err := l.Wait(bg, 1, 0); err != nil { // the burst
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(bg)
	time.AfterFunc(50*time.Millisecond, cancel)
	err := l.Wait(ctx, 100, 0) // ten seconds' worth
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Wait returned %v", err)
	}
	// What the cancelled Wait had reserved was given back: the next op is
	// due within 100 ms, not after the 10 s it had queued.
	ctx2, cancel2 := context.WithTimeout(bg, 2*time.Second)
	defer cancel2()
	if err := l.Wait(ctx2, 1, 0); err != nil {
		t.Fatalf("after a cancelled Wait: %v", err)
	}

	// Already cancelled: no wait, no reservation.
	done, stop := context.WithCancel(bg)
	stop()
	if err := l.Wait(done, 1, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a done ctx: %v", err)
	}
}

func TestDeadlineTooShort(t *testing.T) {
	l := New(10, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// 100 ops at 10/s need 10 s: refused at once, and nothing kept.
	err := l.Wait(ctx, 100, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait beyond the deadline: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("Wait waited for the deadline instead of failing at once")
	}
	if err := l.Wait(ctx, 1, 0); err != nil {
		t.Fatalf("after a refused Wait: %v", err)
	}
}
