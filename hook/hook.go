// Package hook runs a user's shell command (the cutover hook) so that it
// cannot outlive ferry's interest in it: the command runs with sh -c in a
// process group of its own, with a minimal environment, and whatever is
// left of the group when the command ends, times out or ferry stops is
// terminated (SIGTERM, then SIGKILL after a grace period). Run returns only
// once no process of the group is left, so that the caller may act on the
// outcome (unpause a source) knowing the hook can no longer act.
//
// A hook that leaves its process group on purpose (setsid, a service
// manager) is beyond reach; that is documented, not prevented.
package hook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"time"
)

// DefaultGrace is the time between SIGTERM and SIGKILL when Spec.Grace is 0.
const DefaultGrace = 2 * time.Second

// BaseEnv are the variables of ferry's own environment every hook receives
// (when set).
var BaseEnv = []string{"PATH", "HOME"}

// Spec is one run of a hook.
type Spec struct {
	// Name names the hook in errors ("cutover_hook"). The command text is
	// never part of an error: it may hold credentials.
	Name    string
	Command string
	// Vars are NAME=value pairs set by ferry (FERRY_JOB…); they win over
	// variables of the same name passed through.
	Vars []string
	// Pass names variables of ferry's environment passed through, beside
	// BaseEnv (the cutover_hook_env setting).
	Pass []string
	// Stdout and Stderr receive the hook's output; nil discards it.
	Stdout, Stderr io.Writer
	// Grace is the time between SIGTERM and SIGKILL; 0 is DefaultGrace.
	Grace time.Duration
}

// envNameRE is what a variable name passed through may look like.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// ValidEnvName reports whether name can be passed through to a hook.
func ValidEnvName(name string) bool { return envNameRE.MatchString(name) }

// Env is the hook's whole environment: BaseEnv and pass, as far as lookup
// finds them, then vars.
func Env(vars, pass []string, lookup func(string) (string, bool)) []string {
	set := map[string]bool{}
	for _, kv := range vars {
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				set[kv[:i]] = true
				break
			}
		}
	}
	var env []string
	for _, names := range [][]string{BaseEnv, pass} {
		for _, n := range names {
			if set[n] || !ValidEnvName(n) {
				continue
			}
			if v, ok := lookup(n); ok {
				env = append(env, n+"="+v)
				set[n] = true
			}
		}
	}
	return append(env, vars...)
}

// Run runs s.Command with sh -c and waits for it. It returns nil when sh
// exits 0. When ctx ends first (a deadline: a timeout; a cancel: ferry
// stops), or the command fails, the error says so. In every case, processes
// of the command's group still alive are terminated and Run returns only
// once the group is gone.
func Run(ctx context.Context, s Spec) error {
	grace := s.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	cmd := exec.Command("/bin/sh", "-c", s.Command)
	cmd.Env = Env(s.Vars, s.Pass, os.LookupEnv)
	cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
	// A group of its own: the signals reach the command's children, not
	// only sh (exec.CommandContext would kill sh alone).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s: not run: no time left", s.Name)
		}
		return fmt.Errorf("%s: not run: ferry is stopping", s.Name)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: cannot start /bin/sh: %w", s.Name, unwrapPath(err))
	}
	pgid := cmd.Process.Pid
	start := time.Now()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	var runErr error
	select {
	case err := <-waited:
		runErr = exitError(s.Name, err)
		// sh is gone; children it left behind are terminated too.
		if kerr := terminate(pgid, grace, nil); kerr != nil {
			return fmt.Errorf("%s: %w", s.Name, kerr)
		}
	case <-ctx.Done():
		runErr = stopped(s.Name, ctx, time.Since(start))
		if kerr := terminate(pgid, grace, waited); kerr != nil {
			return fmt.Errorf("%w; %w", runErr, kerr)
		}
	}
	return runErr
}

// exitError describes how sh ended, without the command text.
func exitError(name string, err error) error {
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return fmt.Errorf("%s: killed by signal %s", name, signalName(ws.Signal()))
		}
		return fmt.Errorf("%s: exited with status %d", name, ee.ExitCode())
	}
	return fmt.Errorf("%s: %w", name, err)
}

func stopped(name string, ctx context.Context, after time.Duration) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out after %s; its processes were terminated", name, after.Round(time.Millisecond))
	}
	return fmt.Errorf("%s: interrupted by ferry's stop; its processes were terminated", name)
}

// unwrapPath keeps an exec error free of the arguments.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func signalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGKILL:
		return "SIGKILL"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	case syscall.SIGPIPE:
		return "SIGPIPE"
	case syscall.SIGSEGV:
		return "SIGSEGV"
	case syscall.SIGABRT:
		return "SIGABRT"
	}
	return fmt.Sprintf("%d (%s)", int(sig), sig)
}

// pollEvery is how often terminate looks whether the group is gone: no
// notification exists for the end of processes that are not ferry's
// children.
const pollEvery = 10 * time.Millisecond

// killWait bounds the wait after SIGKILL: a process stuck in the kernel
// (uninterruptible I/O) cannot be waited for forever.
const killWait = 10 * time.Second

// terminate ends every process of the group pgid: SIGTERM, then SIGKILL
// after grace. sh, the group's leader, is ferry's child: when waited is
// not nil, sh has not been reaped yet and terminate receives from it. It
// returns once the group is gone, or an error when processes survived
// SIGKILL for killWait.
func terminate(pgid int, grace time.Duration, waited <-chan error) error {
	if !groupAlive(pgid) && waited == nil {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGone(pgid, grace, &waited) {
		return nil
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if waitGone(pgid, killWait, &waited) {
		return nil
	}
	return fmt.Errorf("processes of process group %d survived SIGKILL for %s", pgid, killWait)
}

// waitGone waits up to d for the group to be gone, reaping sh on the way.
func waitGone(pgid int, d time.Duration, waited *<-chan error) bool {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		if *waited == nil && !groupAlive(pgid) {
			return true
		}
		select {
		case <-*waited:
			*waited = nil
		case <-tick.C:
		case <-deadline.C:
			return *waited == nil && !groupAlive(pgid)
		}
	}
}
