package main

import (
	"errors"
	"sync"

	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/conf"
	"github.com/ferry-dev/ferry/internal/cpusched"
)

// Scheduling: a full sync is paced by the source's fork child writing the
// snapshot, and on shared cores every wake-up of ferry's threads may
// preempt it (internal/cpusched). Under SCHED_BATCH ferry wakes without
// preempting and reads more per wake-up: measured on 2 cores in
// interleaved rounds, a 1M-key full sync took 23.85 s against a native
// replica's 23.60 s and 24.99 s under the normal policy, ferry's CPU 3.3–4.2
// against 4.3–4.4 s (bench/PROFILE.md, section 12). In the live stream the trade runs the other way: the lag
// of each write is what counts, and a wake-up should run at once. So
// cpu_scheduling auto, the default, runs ferry batch while any of its
// streams reads a snapshot and at the policy it started with otherwise;
// batch and normal hold one policy throughout.

// cpuPolicy applies cpu_scheduling to the process's threads. It is safe for
// concurrent use by the streams of every job of a batch.
type cpuPolicy struct {
	log  zerolog.Logger
	mode conf.CPUScheduling
	base cpusched.Policy // auto's policy outside snapshots: the one ferry started with

	mu        sync.Mutex
	snapshots int             // streams reading a snapshot now
	cur       cpusched.Policy // what the threads were last given
	off       bool            // the system refused a change: try no more
}

// newCPUPolicy applies a fixed policy at once; auto waits for a snapshot.
func newCPUPolicy(log zerolog.Logger, mode conf.CPUScheduling) *cpuPolicy {
	p := &cpuPolicy{log: log, mode: mode}
	switch mode {
	case conf.CPUBatch:
		p.set(cpusched.Batch)
	case conf.CPUNormal:
		p.set(cpusched.Normal) // also when started batch
	default:
		base, err := cpusched.Get()
		p.base, p.cur = base, base
		if err != nil {
			p.refused(err)
		}
	}
	return p
}

// snapshot records that a stream started (true) or stopped (false) reading
// a snapshot; under auto the first start turns the process batch and the
// last stop turns it back.
func (p *cpuPolicy) snapshot(on bool) {
	if p == nil || p.mode != conf.CPUAuto {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.snapshots++
	} else {
		p.snapshots--
	}
	if p.snapshots > 0 {
		p.apply(cpusched.Batch)
	} else {
		p.apply(p.base)
	}
}

// apply gives every thread policy q unless it was given already; callers
// hold mu.
func (p *cpuPolicy) apply(q cpusched.Policy) {
	if q != p.cur {
		p.set(q)
	}
}

// set gives every thread policy q.
func (p *cpuPolicy) set(q cpusched.Policy) {
	if p.off {
		return
	}
	n, err := cpusched.Set(q)
	if err != nil {
		p.refused(err)
		return
	}
	p.cur = q
	p.log.Debug().Int("threads_changed", n).Str("policy", q.String()).Str("cpu_scheduling", string(p.mode)).Msg("scheduler: thread policy set")
}

// refused logs why the policy cannot be set and stops trying: it changes
// how kindly ferry shares its cores, never what a job does.
func (p *cpuPolicy) refused(err error) {
	p.off = true
	if errors.Is(err, cpusched.ErrUnsupported) {
		p.log.Debug().Str("cpu_scheduling", string(p.mode)).Msg("scheduler: thread policies are Linux only; cpu_scheduling ignored")
		return
	}
	p.log.Warn().Err(err).Msgf("cpu_scheduling %q not applied: ferry runs at the policy it was started with", p.mode)
}

// scheduler is how the jobs of a process tell it about their streams so
// that it schedules itself: Ps (procs) and the threads' policy (cpuPolicy).
type scheduler struct {
	procs *procs
	cpu   *cpuPolicy
}

func newScheduler(log zerolog.Logger, mode conf.CPUScheduling) scheduler {
	return scheduler{procs: newProcs(log), cpu: newCPUPolicy(log, mode)}
}
