package lease

import (
	"os"
	"strconv"
	"strings"
)

// What tells this process apart from any other one on this host (see
// Owner): the kernel's boot, the pid namespace, and when the process
// started, in clock ticks since boot (/proc/<pid>/stat, field 22). The
// start time is what makes a pid that was reused by another process look
// like another process: the same pid with another start is not the owner.

// machine is this kernel's boot ID and this process's pid namespace ("" when
// /proc does not say).
func machine() (boot, pidns string) {
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		boot = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		pidns = ns
	}
	return boot, pidns
}

// procStart is when process pid started, in clock ticks since boot, and
// whether it runs: ok=false when there is no such process, or it has
// exited and waits to be reaped (a zombie holds no connections).
func procStart(pid int) (ticks uint64, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// pid (comm) state ppid ... : comm may hold spaces and parentheses,
	// the fields after the last ')' do not.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so field 22 (starttime) is f[19].
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return ticks, true
}
