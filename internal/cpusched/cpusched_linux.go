package cpusched

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

func (p Policy) linux() uint32 {
	if p == Batch {
		return unix.SCHED_BATCH
	}
	return unix.SCHED_NORMAL // SCHED_OTHER
}

// Set gives every thread of the process policy p and returns how many it
// changed. A real-time or idle thread (set by the operator, say with chrt)
// is left alone.
//
// A new thread takes its policy from the thread that creates it, copied at
// the start of clone(2), and shows in /proc only at the end: a thread whose
// creation was under way during a pass may come out with the old policy
// after it. So Set repeats its pass until one changes nothing, then, after
// settle (longer than a clone takes unless its thread is preempted), once
// more, and again until such a pass changes nothing.
func Set(p Policy) (int, error) {
	want := p.linux()
	changed := 0
	for round := 0; round < 10; round++ {
		n, err := passes(want)
		changed += n
		if err != nil || (round > 0 && n == 0) {
			return changed, err
		}
		time.Sleep(settle)
	}
	return changed, fmt.Errorf("threads kept appearing with another policy")
}

const settle = 2 * time.Millisecond

// passes sets want on every thread, pass after pass until one changes none.
func passes(want uint32) (int, error) {
	changed := 0
	for pass := 0; pass < 100; pass++ {
		tids, err := threads(0)
		if err != nil {
			return changed, err
		}
		n := 0
		for _, tid := range tids {
			attr, err := unix.SchedGetAttr(tid, 0)
			if errors.Is(err, unix.ESRCH) {
				continue // the thread ended
			}
			if err != nil {
				return changed, fmt.Errorf("thread %d: %w", tid, err)
			}
			if attr.Policy == want || (attr.Policy != unix.SCHED_NORMAL && attr.Policy != unix.SCHED_BATCH) {
				continue
			}
			attr.Size = unix.SizeofSchedAttr
			attr.Policy = want // the nice value stays as it is
			if err := unix.SchedSetAttr(tid, attr, 0); err != nil && !errors.Is(err, unix.ESRCH) {
				return changed, fmt.Errorf("thread %d: %w", tid, err)
			}
			n++
		}
		changed += n
		if n == 0 {
			return changed, nil
		}
	}
	return changed, fmt.Errorf("threads kept appearing with another policy")
}

// Get returns the policy of the calling thread (normal for a policy other
// than normal and batch).
func Get() (Policy, error) {
	attr, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return Normal, err
	}
	if attr.Policy == unix.SCHED_BATCH {
		return Batch, nil
	}
	return Normal, nil
}

// Of returns the policy of every thread of process pid (0: this one) that
// has the normal or the batch policy.
func Of(pid int) (map[int]Policy, error) {
	tids, err := threads(pid)
	if err != nil {
		return nil, err
	}
	out := make(map[int]Policy, len(tids))
	for _, tid := range tids {
		attr, err := unix.SchedGetAttr(tid, 0)
		if errors.Is(err, unix.ESRCH) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("thread %d: %w", tid, err)
		}
		switch attr.Policy {
		case unix.SCHED_BATCH:
			out[tid] = Batch
		case unix.SCHED_NORMAL:
			out[tid] = Normal
		}
	}
	return out, nil
}

// threads lists the thread IDs of process pid (0: this one).
func threads(pid int) ([]int, error) {
	dir := "/proc/self/task"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid) + "/task"
	}
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	return tids, nil
}
