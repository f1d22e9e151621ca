//go:build linux

package cpusched

import (
	"runtime"
	"sync"
	"testing"
)

// lockedThreads starts n goroutines that each hold an OS thread of their
// own, so that the runtime creates threads while and after Set runs.
func lockedThreads(n int) (stop func()) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			<-done // the thread ends with the goroutine, never reused
		}()
	}
	return func() { close(done); wg.Wait() }
}

func want(t *testing.T, p Policy) {
	t.Helper()
	got, err := Of(0)
	if err != nil {
		t.Fatal(err)
	}
	for tid, q := range got {
		if q != p {
			t.Errorf("thread %d: policy %v, want %v", tid, q, p)
		}
	}
	if len(got) == 0 {
		t.Fatal("no threads listed")
	}
}

func TestSetEveryThread(t *testing.T) {
	t.Cleanup(func() { _, _ = Set(Normal) })
	before := lockedThreads(4)
	defer before()

	// Threads created during Set: a goroutine keeps locking new ones.
	during := make(chan func())
	go func() {
		var stops []func()
		for range 20 {
			stops = append(stops, lockedThreads(1))
		}
		during <- func() {
			for _, s := range stops {
				s()
			}
		}
	}()
	n, err := Set(Batch)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("Set(Batch) changed no thread")
	}
	stopDuring := <-during
	defer stopDuring()
	after := lockedThreads(4) // created after Set: inherited
	defer after()
	want(t, Batch)

	if n, err := Set(Batch); err != nil || n != 0 {
		t.Errorf("Set(Batch) again changed %d threads (%v), want none", n, err)
	}
	if _, err := Set(Normal); err != nil {
		t.Fatal(err)
	}
	want(t, Normal)
}
