package hook

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
)

// groupAlive reports whether a process of group pgid is still running.
// Zombies do not count: a killed child of the hook whose new parent does not
// reap it (PID 1 in some containers) can no longer act.
func groupAlive(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true // no /proc: kill's answer is all there is
	}
	found := false
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		found = true
		if pg, state, ok := parseStat(b); ok && pg == pgid && state != 'Z' && state != 'X' {
			return true
		}
	}
	if !found {
		return true // /proc without process entries: do not trust it
	}
	return false
}

// parseStat reads the process group and the state from /proc/<pid>/stat:
// "pid (comm) state ppid pgrp …", where comm may hold spaces and parentheses.
func parseStat(b []byte) (pgrp int, state byte, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return 0, 0, false
	}
	pg, err := strconv.Atoi(string(f[2]))
	if err != nil {
		return 0, 0, false
	}
	return pg, f[0][0], true
}
