package redistest

import "syscall"

// sysProcAttr makes the kernel SIGKILL redis-server when the test binary dies
// (a panic or a -timeout kill skips t.Cleanup).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
