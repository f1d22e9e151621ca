// Package cpusched sets the Linux scheduling policy of every thread of the
// process.
//
// Why ferry asks for SCHED_BATCH: ferry is a pipe between Redis servers that
// often share its cores — the source's fork child writing a snapshot, the
// source's main thread copying it to the socket, the target applying it.
// Under the default policy every wake-up of one of ferry's threads (a socket
// read, a reply; thousands a second) may preempt whichever of them is on the
// core, and in a full sync the one preempted is most often the fork child,
// which sets the pace of the whole sync. SCHED_BATCH keeps ferry's fair
// share of CPU and its nice value; it only gives up preempting at a wake-up,
// so ferry runs when a core is free or the running task's slice ends, and
// finds more data per wake-up. When ferry asks for it, and what it
// measured, is cmd/ferry's (cpu_scheduling).
//
// The policy needs no privilege (a process may always move between the
// normal and batch policies), is kept across a thread's lifetime and is
// inherited by the threads and processes it creates: hooks ferry runs
// inherit it too.
package cpusched

import "errors"

// Policy is a thread scheduling policy.
type Policy int

const (
	// Normal is the kernel's default (SCHED_OTHER).
	Normal Policy = iota
	// Batch is SCHED_BATCH: a fair share, no preemption at wake-up.
	Batch
)

func (p Policy) String() string {
	if p == Batch {
		return "batch"
	}
	return "normal"
}

// ErrUnsupported is returned where the system has no such policies.
var ErrUnsupported = errors.New("thread scheduling policies are a Linux feature")
