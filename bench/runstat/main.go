// Command runstat runs a command and records its wall time and peak resident
// memory (the kernel's rusage maximum RSS of the child, the same figure as
// VmHWM), forwarding SIGINT and SIGTERM to it.
//
//	runstat -o stats.txt -- bin/ferry sync ...
//
// The file gets one line: "wall_s=12.345 maxrss_mb=87.2 exit=0". runstat
// exits with the command's exit code (128+signal when a signal ended it).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	out := flag.String("o", "", "write the stats line to this file (default: stderr)")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: runstat [-o FILE] -- command [args...]")
		os.Exit(2)
	}
	cmd := exec.Command(flag.Arg(0), flag.Args()[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "runstat:", err)
		os.Exit(127)
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	wall := time.Since(t0)
	code := 0
	if err != nil {
		code = 1
	}
	st := cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok {
		switch {
		case ws.Exited():
			code = ws.ExitStatus()
		case ws.Signaled():
			code = 128 + int(ws.Signal())
		}
	}
	rss := 0.0
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		rss = float64(ru.Maxrss) / 1024 // KiB on Linux
	}
	line := fmt.Sprintf("wall_s=%.3f maxrss_mb=%.1f exit=%d user_s=%.2f sys_s=%.2f\n",
		wall.Seconds(), rss, code, st.UserTime().Seconds(), st.SystemTime().Seconds())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(line), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "runstat:", err)
		}
	} else {
		fmt.Fprint(os.Stderr, line)
	}
	os.Exit(code)
}
