//go:build linux

package lease

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/ctl"
	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// TestSameMachineOwner: a live lease whose owner ran on this machine (same
// host name, kernel and pid namespace) and no longer runs — its pid runs
// nothing, a zombie, or a process that started at another time — is taken
// at once without takeover, and says so (PrevGone). One whose pid runs the
// process that took it (a child sleep of this test), one of another host,
// another kernel or pid namespace, and one written without the start time
// (an older ferry) are refused.
func TestSameMachineOwner(t *testing.T) {
	s := redistest.Start(t)
	ctx := context.Background()
	c := ctl.New(dial.Options{Addr: s.Addr})
	defer c.Close()
	me := Self(time.Now())
	if me.Boot == "" || me.PIDNS == "" || me.Ticks == 0 {
		t.Skipf("/proc does not tell this machine: %+v", me)
	}

	live := exec.Command("sleep", "60")
	if err := live.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { live.Process.Kill(); live.Wait() }()
	liveTicks, ok := procStart(live.Process.Pid)
	if !ok {
		t.Fatal("no start time of a running child")
	}

	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	deadPID := exited.Process.Pid // reaped: the pid runs nothing (unless reused at once)
	if _, runs := procStart(deadPID); runs {
		t.Skipf("pid %d was reused at once", deadPID)
	}

	zombie := exec.Command("sleep", "60")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	zombieTicks, _ := procStart(zombie.Process.Pid)
	zombie.Process.Kill() // not waited for until the end: a zombie meanwhile
	defer zombie.Wait()
	redistest.WaitFor(t, 10*time.Second, func() bool { _, runs := procStart(zombie.Process.Pid); return !runs }, "the killed child a zombie")

	proc := func(pid int, ticks uint64, edit func(*Owner)) Owner {
		o := me
		o.PID, o.Ticks, o.Started = pid, ticks, time.Unix(1, 0)
		if edit != nil {
			edit(&o)
		}
		o.ID = fmt.Sprintf("%s/%d/1", o.Host, pid)
		return o
	}
	cases := []struct {
		name string
		o    Owner
		gone bool
	}{
		{"this machine, the pid runs nothing", proc(deadPID, 12345, nil), true},
		{"this machine, the pid is a zombie", proc(zombie.Process.Pid, zombieTicks, nil), true},
		{"this machine, the pid reused by a process started later", proc(live.Process.Pid, liveTicks-1, nil), true},
		{"this machine, the process runs", proc(live.Process.Pid, liveTicks, nil), false},
		{"another host, the pid runs nothing here", proc(deadPID, 12345, func(o *Owner) { o.Host = "elsewhere" }), false},
		{"this host name, another kernel", proc(deadPID, 12345, func(o *Owner) { o.Boot = "00000000-0000-0000-0000-000000000000" }), false},
		{"this host, another pid namespace", proc(deadPID, 12345, func(o *Owner) { o.PIDNS = "pid:[1]" }), false},
		{"this host, an older ferry's lease", proc(deadPID, 0, func(o *Owner) { o.Boot, o.PIDNS = "", "" }), false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := fmt.Sprintf("__ferry:j%d:lease", i)
			if _, err := Acquire(ctx, c, key, tc.o, 30*time.Second, false); err != nil {
				t.Fatal(err)
			}
			if got, _ := Read(ctx, c, key); got.Owner.Boot != tc.o.Boot || got.Owner.PIDNS != tc.o.PIDNS || got.Owner.Ticks != tc.o.Ticks {
				t.Errorf("the lease holds %+v, want %+v", got.Owner, tc.o)
			}
			start := time.Now()
			took, err := Acquire(ctx, c, key, me, 30*time.Second, false)
			if !tc.gone {
				var held *HeldError
				if !errors.As(err, &held) || held.Info.Owner.ID != tc.o.ID {
					t.Errorf("taken from a live owner without takeover: %+v %v", took, err)
				}
				return
			}
			if err != nil || took.Epoch != 2 || !took.PrevGone || took.Prev.Owner.ID != tc.o.ID || time.Since(start) > 5*time.Second {
				t.Errorf("not taken at once from a gone owner: %+v %v", took, err)
			}
			if got, _ := Read(ctx, c, key); got.Owner.ID != me.ID || got.Epoch != 2 {
				t.Errorf("the lease after: %+v", got)
			}
		})
	}
}
