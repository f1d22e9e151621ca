package main

import (
	"os"
	"runtime"
	"sync"

	"github.com/rs/zerolog"
)

// Scheduler: a stream's data passes through a chain of goroutines — socket
// reader, spool, consumer (parse and apply), writer, reply reader — with
// thousands of hand-offs a second. With more Ps than the job has streams,
// a hand-off wakes another thread (a futex) and idle threads spin looking
// for work. Measured on 2 cores, a 1M-key full sync took 10.4 s of ferry's
// CPU with 2 Ps and 7.0 s with 1 (sys 3.7 s against 2.0 s), CPU that the
// source's fork and the target, often on the same cores, did not get; the
// wall time followed. One consumer applies over 6M commands a second on one
// core (BenchmarkStreamApply), far above what a Redis target takes, so one
// P per stream is enough: the process runs with as many Ps as its running
// jobs have streams, at most what Go chose at start (the cores, or the
// container's CPU limit). GOMAXPROCS, when set, is the operator's and wins.

// procs sizes GOMAXPROCS to the streams of the jobs running now. It is safe
// for concurrent use by the jobs of a batch.
type procs struct {
	log   zerolog.Logger
	fixed bool // GOMAXPROCS is set: leave it
	max   int  // what the runtime chose at start

	mu   sync.Mutex
	jobs map[string]int // streams of each running job
}

func newProcs(log zerolog.Logger) *procs {
	_, fixed := os.LookupEnv("GOMAXPROCS")
	return &procs{log: log, fixed: fixed, max: runtime.GOMAXPROCS(0), jobs: map[string]int{}}
}

// set records that job now reads n streams (0: it ended) and resizes.
func (p *procs) set(job string, n int) {
	if p == nil || p.fixed {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > 0 {
		p.jobs[job] = n
	} else {
		delete(p.jobs, job)
	}
	want := p.max // nothing runs: the runtime's choice
	if len(p.jobs) > 0 {
		sum := 0
		for _, n := range p.jobs {
			sum += n
		}
		want = min(sum, p.max)
	}
	if runtime.GOMAXPROCS(0) != want {
		runtime.GOMAXPROCS(want)
		p.log.Debug().Int("procs", want).Int("cpus", p.max).Msg("scheduler: one P per stream read (GOMAXPROCS overrides)")
	}
}
