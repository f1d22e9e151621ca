package main

import (
	"runtime"
	"testing"

	"github.com/rs/zerolog"
)

// The process runs with one P per stream of the jobs running now, within
// what the runtime chose, and returns to that choice when they end.
func TestProcsFollowStreams(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	p := &procs{log: zerolog.Nop(), max: 4, jobs: map[string]int{}}
	runtime.GOMAXPROCS(4)
	steps := []struct {
		job     string
		streams int
		want    int
	}{
		{"a", 1, 1}, // a standalone source
		{"b", 2, 3}, // a second job of a batch, two shards
		{"c", 3, 4}, // more streams than the runtime's choice
		{"c", 0, 3},
		{"a", 0, 2},
		{"b", 0, 4}, // nothing runs
	}
	for _, s := range steps {
		p.set(s.job, s.streams)
		if got := runtime.GOMAXPROCS(0); got != s.want {
			t.Fatalf("after %s=%d: GOMAXPROCS %d, want %d", s.job, s.streams, got, s.want)
		}
	}
}

// GOMAXPROCS in the environment is the operator's: left alone.
func TestProcsFixedByEnvironment(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	before := runtime.GOMAXPROCS(3)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	p := newProcs(zerolog.Nop())
	p.set("a", 1)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d, want 3 (from the environment)", got)
	}
}
