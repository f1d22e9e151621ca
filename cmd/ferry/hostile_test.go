package main

// Hostile and stuck peers: a fake source (a small RESP server in the test)
// or a target behind a command-aware proxy sends what no Redis sends —
// nesting a million levels deep, a 4 GiB bulk string with no data, a 2^31
// element array, a 3 MiB status line, garbage — at each place ferry reads
// RESP. The real ferry binary must exit 1 with one line naming the peer, no
// goroutine trace, and a small peak RSS; a stop signal must end it while a
// peer is silent in the middle of a reply.

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/resp"
)

var hostilePayloads = []struct{ name, data string }{
	{"nesting", strings.Repeat("*1\r\n", 1_000_000)},
	{"bulk-4GiB", "$4294967296\r\n"},
	{"array-2^31", "*2147483647\r\n"},
	{"status-3MiB", "+" + strings.Repeat("x", 3<<20) + "\r\n"},
	{"garbage", "\x00\xffHTTP/1.1 400 Bad Request\r\n\r\n"},
}

// maxRSS is the peak RSS a hostile peer may cause.
const maxRSS = 100 << 20

// peerConn is one connection to a fake peer.
type peerConn struct {
	net.Conn
	r      *resp.Reader
	name   string // CLIENT SETNAME
	silent bool   // sent its payload: reads on, answers nothing more
}

// sendLast writes b and answers nothing more on c.
func (c *peerConn) sendLast(b string) {
	c.silent = true
	c.Write([]byte(b))
}

// fakePeer serves RESP on loopback: handle answers each command. Its
// connections stay open until the test ends, so a failure of ferry comes
// from what it read, not from a closed connection.
type fakePeer struct {
	Addr string
	ln   net.Listener
	mu   sync.Mutex
	cs   []net.Conn
	wg   sync.WaitGroup
}

func newFakePeer(t *testing.T, handle func(c *peerConn, args []string)) *fakePeer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &fakePeer{Addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.cs = append(p.cs, nc)
			p.mu.Unlock()
			c := &peerConn{Conn: nc, r: resp.NewReader(nc, 64<<10)}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				for {
					raw, err := c.r.ReadCommand()
					if err != nil {
						return
					}
					if len(raw) == 0 || c.silent {
						continue
					}
					args := make([]string, len(raw))
					for i, a := range raw {
						args[i] = string(a)
					}
					if len(args) == 3 && strings.EqualFold(args[0], "CLIENT") && strings.EqualFold(args[1], "SETNAME") {
						c.name = args[2]
					}
					handle(c, args)
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.cs {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// fakeInfo is what the fake source answers to INFO: a standalone master.
const fakeReplID = "0123456789abcdef0123456789abcdef01234567"

func fakeInfo() string {
	return "# Server\r\nredis_version:7.0.15\r\n# Replication\r\nrole:master\r\nconnected_slaves:0\r\n" +
		"master_replid:" + fakeReplID + "\r\nmaster_replid2:0000000000000000000000000000000000000000\r\n" +
		"master_repl_offset:0\r\nsecond_repl_offset:-1\r\n# Cluster\r\ncluster_enabled:0\r\n"
}

// answer is a plausible reply of a standalone master to ferry's commands.
func answer(c net.Conn, args []string) {
	var out string
	switch strings.ToUpper(args[0]) {
	case "PING":
		out = "+PONG\r\n"
	case "HELLO":
		out = "-ERR unknown command 'HELLO'\r\n" // go-redis falls back to RESP2 as with Redis 5
	case "INFO":
		out = string(resp.AppendBulkString(nil, fakeInfo()))
	case "CONFIG":
		out = "*0\r\n"
	case "REPLCONF":
		if len(args) > 1 && strings.EqualFold(args[1], "ACK") {
			return // a replica's ACK has no reply
		}
		out = "+OK\r\n"
	default:
		out = "+OK\r\n"
	}
	c.Write([]byte(out))
}

// emptyRDB is the snapshot of an empty redis-server.
func emptyRDB(t *testing.T, s *redistest.Server) []byte {
	t.Helper()
	s.Do(t, "SAVE")
	b, err := os.ReadFile(filepath.Join(s.Dir, "dump.rdb"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hostileRun runs a sync from src to dst and checks the hostile-peer
// contract: exit 1 within a bound, one line on stderr that names peer, no
// trace, a small peak RSS.
func hostileRun(t *testing.T, src, dst, peer string, fired *atomic.Bool, settings ...string) {
	t.Helper()
	args := []string{"sync", "--source", src, "--target", dst, "--job", "hostile",
		"-c", jobFile(t, "log_level = \"error\"\n"+strings.Join(settings, "\n"))}
	p, peak := startMeasured(t, args...)
	code, out, errs := p.wait(t, 90*time.Second)
	checkClean(t, out, errs)
	if !fired.Load() {
		t.Fatalf("ferry ended before the peer sent the payload: exit %d\n%s", code, clipOut(errs))
	}
	if code != exitFailure {
		t.Errorf("exit %d, want %d\nstderr:\n%s", code, exitFailure, clipOut(errs))
	}
	lines := strings.Split(strings.TrimRight(errs, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "ferry: error: ") || !strings.Contains(lines[0], peer) {
		t.Errorf("stderr is not one error line naming %s:\n%s", peer, clipOut(errs))
	}
	if len(lines[0]) > 1000 {
		t.Errorf("the error line is %d bytes long", len(lines[0]))
	}
	checkRSS(t, peak())
	t.Logf("peak RSS %d MB; %s", peak()>>20, clipOut(lines[0]))
}

// startMeasured starts the ferry binary under GNU time, which reports its
// peak RSS. (The rusage of a child started by this test would not do: Linux
// keeps a process's peak RSS across exec, and os/exec's child starts as a
// share of this test's memory.) peak returns -1 when /usr/bin/time is
// missing. The process in p is time; ferry is its only child.
func startMeasured(t *testing.T, args ...string) (p *ferryProc, peak func() int64) {
	t.Helper()
	bin := redistest.FerryBinary(t)
	out := filepath.Join(t.TempDir(), "rss")
	p = &ferryProc{done: make(chan struct{}), description: "ferry " + strings.Join(args, " ")}
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		p.cmd = exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", out, bin}, args...)...)
	} else {
		p.cmd = exec.Command(bin, args...)
	}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.errb
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			if pid := ferryPID(p); pid > 0 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p, func() int64 {
		b, err := os.ReadFile(out)
		if err != nil {
			return -1
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			return -1
		}
		kb, err := strconv.ParseInt(f[len(f)-1], 10, 64)
		if err != nil {
			return -1
		}
		return kb << 10
	}
}

// ferryPID is the pid of the ferry process of p (time's child), or p's own
// when ferry was started directly.
func ferryPID(p *ferryProc) int {
	if filepath.Base(p.cmd.Path) != "time" {
		return p.cmd.Process.Pid
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.cmd.Process.Pid, p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	pid, _ := strconv.Atoi(f[0])
	return pid
}

func checkRSS(t *testing.T, peak int64) {
	t.Helper()
	switch {
	case peak < 0:
		t.Log("peak RSS not measured: /usr/bin/time (GNU time) is not installed")
	case peak > maxRSS:
		t.Errorf("peak RSS %d MB, want under %d MB", peak>>20, maxRSS>>20)
	}
}

func clipOut(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "..."
	}
	return s
}

// TestHostileSource: a fake source sends each payload in reply to ferry's
// control-plane INFO, to the replica handshake (CLIENT SETNAME, REPLCONF,
// PSYNC), in place of the snapshot, and in the command stream after a
// valid snapshot.
func TestHostileSource(t *testing.T) {
	dst := redistest.Start(t)
	rdb := emptyRDB(t, dst)
	fullResync := "+FULLRESYNC " + fakeReplID + " 0\r\n"
	for _, at := range []struct {
		name string
		// reply returns what to send instead of the normal answer, and
		// whether the payload is in it.
		reply func(c *peerConn, args []string, payload string) (string, bool)
	}{
		{"info", func(c *peerConn, args []string, payload string) (string, bool) {
			return payload, strings.EqualFold(args[0], "INFO")
		}},
		{"setname", func(c *peerConn, args []string, payload string) (string, bool) {
			return payload, strings.HasPrefix(c.name, "ferry-reader") && strings.EqualFold(args[0], "CLIENT")
		}},
		{"replconf", func(c *peerConn, args []string, payload string) (string, bool) {
			return payload, strings.EqualFold(args[0], "REPLCONF")
		}},
		{"psync", func(c *peerConn, args []string, payload string) (string, bool) {
			return payload, strings.EqualFold(args[0], "PSYNC")
		}},
		{"snapshot", func(c *peerConn, args []string, payload string) (string, bool) {
			return fullResync + payload, strings.EqualFold(args[0], "PSYNC") && !strings.HasPrefix(payload, "$")
		}},
		{"stream", func(c *peerConn, args []string, payload string) (string, bool) {
			return fullResync + "$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb) + payload, strings.EqualFold(args[0], "PSYNC")
		}},
	} {
		for _, pl := range hostilePayloads {
			if at.name == "snapshot" && strings.HasPrefix(pl.data, "$") {
				// A length there announces a snapshot of that size:
				// legitimate, so a silent peer is a stuck one (see
				// TestStopWhilePeerSilent).
				continue
			}
			t.Run(at.name+"/"+pl.name, func(t *testing.T) {
				dst.Do(t, "FLUSHALL")
				var fired atomic.Bool
				src := newFakePeer(t, func(c *peerConn, args []string) {
					if out, ok := at.reply(c, args, pl.data); ok && fired.CompareAndSwap(false, true) {
						c.sendLast(out)
						return
					}
					answer(c, args)
				})
				hostileRun(t, "redis://"+src.Addr, dst.URL(), src.Addr, &fired)
			})
		}
	}
}

// TestHostileTarget: a proxy in front of a real target replaces one reply
// with each payload: to the control plane's CLIENT SETNAME, AUTH and first
// command, and to the writer's CLIENT SETNAME and its first data command.
func TestHostileTarget(t *testing.T) {
	src, dst := redistest.Start(t), redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 20, Seed: 3})
	for _, at := range []struct {
		name    string
		trigger func(c *peerConn, args []string) bool
		auth    bool
	}{
		{"ctl-setname", func(c *peerConn, args []string) bool {
			return strings.EqualFold(args[0], "CLIENT") && strings.HasPrefix(c.name, "ferry-ctl")
		}, false},
		{"ctl-auth", func(c *peerConn, args []string) bool { return strings.EqualFold(args[0], "AUTH") }, true},
		{"ctl-ping", func(c *peerConn, args []string) bool { return strings.EqualFold(args[0], "PING") }, false},
		{"writer-setname", func(c *peerConn, args []string) bool {
			return strings.EqualFold(args[0], "CLIENT") && strings.HasPrefix(c.name, "ferry-writer")
		}, false},
		{"writer-data", func(c *peerConn, args []string) bool {
			if !strings.HasPrefix(c.name, "ferry-writer") {
				return false
			}
			switch strings.ToUpper(args[0]) {
			case "CLIENT", "CONFIG", "SELECT", "GET", "PING":
				return false
			}
			return true
		}, false},
	} {
		for _, pl := range hostilePayloads {
			if at.name == "writer-data" && pl.name == "array-2^31" {
				// The writer reads replies to replicated commands without
				// keeping them, so it does not limit their count: an
				// array that never comes is a stuck peer, ended by the
				// read deadline or a stop signal.
				continue
			}
			t.Run(at.name+"/"+pl.name, func(t *testing.T) {
				dst.Do(t, "FLUSHALL")
				var fired atomic.Bool
				proxy := newFakePeer(t, relay(t, dst.Addr, func(c *peerConn, args []string) (string, bool) {
					return pl.data, at.trigger(c, args) && fired.CompareAndSwap(false, true)
				}))
				target := "redis://" + proxy.Addr
				if at.auth {
					target = "redis://:secret@" + proxy.Addr
				}
				hostileRun(t, src.URL(), target, proxy.Addr, &fired)
			})
		}
	}
}

// relay forwards each command to the server at addr over a connection of
// its own and relays the reply, unless hostile says to send something else.
func relay(t *testing.T, addr string, hostile func(c *peerConn, args []string) (string, bool)) func(c *peerConn, args []string) {
	var mu sync.Mutex
	upstream := map[*peerConn]*resp.Conn{}
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range upstream {
			u.Close()
		}
	})
	return func(c *peerConn, args []string) {
		if out, ok := hostile(c, args); ok {
			c.sendLast(out)
			return
		}
		mu.Lock()
		u := upstream[c]
		if u == nil {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				mu.Unlock()
				c.Close()
				return
			}
			u = resp.NewConn(nc, 64<<10)
			u.R.SetLimits(resp.StreamLimits())
			upstream[c] = u
		}
		mu.Unlock()
		if strings.EqualFold(args[0], "AUTH") {
			c.Write([]byte("+OK\r\n")) // the real target has no password
			return
		}
		u.W.Write(resp.AppendCommandStrings(nil, args...))
		if err := u.W.Flush(); err != nil {
			c.Close()
			return
		}
		v, err := u.R.ReadValue()
		if err != nil {
			c.Close()
			return
		}
		c.Write(appendValue(nil, v))
	}
}

func appendValue(dst []byte, v resp.Value) []byte {
	switch {
	case v.Kind == resp.Bulk && v.Null:
		return append(dst, "$-1\r\n"...)
	case v.Kind == resp.Array && v.Null:
		return append(dst, "*-1\r\n"...)
	}
	switch v.Kind {
	case resp.SimpleString, resp.Error:
		dst = append(dst, byte(v.Kind))
		dst = append(dst, v.Str...)
		return append(dst, '\r', '\n')
	case resp.Integer:
		return fmt.Appendf(dst, ":%d\r\n", v.Int)
	case resp.Bulk:
		return resp.AppendBulk(dst, v.Str)
	}
	dst = resp.AppendArrayHeader(dst, len(v.Elems))
	for _, e := range v.Elems {
		dst = appendValue(dst, e)
	}
	return dst
}

// TestStopWhilePeerSilent: SIGINT ends ferry promptly while a peer has
// stopped in the middle of a reply — the source in the replica handshake,
// in a snapshot it announced as 4 GiB and in a 500 MB command of the stream
// (memory stays small: nothing is allocated ahead of the data) — and within
// within stop_timeout otherwise (the target stopped in the reply to a
// batch, the source in a reply to INFO): past it ferry exits regardless.
func TestStopWhilePeerSilent(t *testing.T) {
	// stop_timeout 5s: whatever the peer does, ferry is gone by then plus
	// the backstop's grace (and a little for a loaded machine).
	const stopWithin = 5*time.Second + stopGrace + 2*time.Second
	dst := redistest.Start(t)
	src := redistest.Start(t)
	redistest.FillAllTypes(t, src.Client(t), redistest.FillOptions{Keys: 20, Seed: 4})
	rdb := emptyRDB(t, dst)
	fullResync := "+FULLRESYNC " + fakeReplID + " 0\r\n"
	for _, c := range []struct {
		name   string
		source bool
		within time.Duration
		// stall returns the partial reply to send before going silent.
		stall func(c *peerConn, args []string) (string, bool)
	}{
		// go-redis, which ferry's control plane uses, does not abandon a
		// read when its context ends: a stop waits for its read timeout.
		{"source-info", true, stopWithin, func(c *peerConn, args []string) (string, bool) {
			return "$100\r\nabc", strings.EqualFold(args[0], "INFO")
		}},
		{"source-replconf", true, stopWithin, func(c *peerConn, args []string) (string, bool) {
			return "$100\r\nabc", strings.EqualFold(args[0], "REPLCONF")
		}},
		{"source-psync", true, stopWithin, func(c *peerConn, args []string) (string, bool) {
			return "+FULLRES", strings.EqualFold(args[0], "PSYNC")
		}},
		{"source-snapshot", true, stopWithin, func(c *peerConn, args []string) (string, bool) {
			return fullResync + "$4294967296\r\nREDIS0011", strings.EqualFold(args[0], "PSYNC")
		}},
		{"source-stream", true, stopWithin, func(c *peerConn, args []string) (string, bool) {
			return fullResync + "$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb) +
				"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000000\r\n" + strings.Repeat("v", 1<<20), strings.EqualFold(args[0], "PSYNC")
		}},
		{"target-writer", false, stopWithin, func(c *peerConn, args []string) (string, bool) {
			if !strings.HasPrefix(c.name, "ferry-writer") {
				return "", false
			}
			switch strings.ToUpper(args[0]) {
			case "CLIENT", "CONFIG", "SELECT", "GET", "PING":
				return "", false
			}
			return "*2147483647\r\n+OK\r\n$100\r\nabc", true
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dst.Do(t, "FLUSHALL")
			stalled := make(chan struct{})
			var fired atomic.Bool
			stall := func(pc *peerConn, args []string) (string, bool) {
				out, ok := c.stall(pc, args)
				return out, ok && fired.CompareAndSwap(false, true)
			}
			var source, target, peer string
			if c.source {
				p := newFakePeer(t, func(pc *peerConn, args []string) {
					if out, ok := stall(pc, args); ok {
						pc.sendLast(out)
						close(stalled)
						return
					}
					answer(pc, args)
				})
				source, target, peer = "redis://"+p.Addr, dst.URL(), p.Addr
			} else {
				p := newFakePeer(t, relay(t, dst.Addr, func(pc *peerConn, args []string) (string, bool) {
					out, ok := stall(pc, args)
					if ok {
						// relay writes out right after this returns.
						defer close(stalled)
					}
					return out, ok
				}))
				source, target, peer = src.URL(), "redis://"+p.Addr, p.Addr
			}
			p, peak := startMeasured(t, "sync", "--source", source, "--target", target, "--job", "stall",
				"-c", jobFile(t, "log_level = \"error\"\nstop_timeout = \"5s\""))
			select {
			case <-stalled:
			case <-p.done:
				t.Fatalf("ferry ended before %s stalled: exit %d\n%s", peer, p.code, clipOut(p.errb.String()))
			case <-time.After(time.Minute):
				t.Fatalf("ferry never reached the stall")
			}
			// ferry is now reading the partial reply (or about to): a
			// stop must not wait for the rest.
			start := time.Now()
			pid := ferryPID(p)
			if pid <= 0 {
				t.Fatal("ferry's pid not found")
			}
			if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			code, out, errs := p.wait(t, time.Minute)
			checkClean(t, out, errs)
			if d := time.Since(start); d > c.within {
				t.Errorf("ferry took %v to stop after SIGINT, want at most %v", d, c.within)
			}
			checkRSS(t, peak())
			t.Logf("exit %d after %v; stdout %q; stderr %q", code, time.Since(start).Round(time.Millisecond), out, clipOut(errs))
			if code != exitOK && code != exitFailure {
				t.Errorf("exit %d after SIGINT\n%s", code, clipOut(errs))
			}
			if n := strings.Count(strings.TrimRight(errs, "\n"), "\n"); n > 0 {
				t.Errorf("stderr holds %d lines:\n%s", n+1, clipOut(errs))
			}
		})
	}
}

// TestMaxBulkLen: an argument in the stream longer than max_bulk_len ends the
// job with one line naming the source, before its data arrives.
func TestMaxBulkLen(t *testing.T) {
	dst := redistest.Start(t)
	rdb := emptyRDB(t, dst)
	var fired atomic.Bool
	src := newFakePeer(t, func(c *peerConn, args []string) {
		if strings.EqualFold(args[0], "PSYNC") && fired.CompareAndSwap(false, true) {
			c.sendLast("+FULLRESYNC " + fakeReplID + " 0\r\n$" + strconv.Itoa(len(rdb)) + "\r\n" + string(rdb) +
				"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2097152\r\n")
			return
		}
		answer(c, args)
	})
	hostileRun(t, "redis://"+src.Addr, dst.URL(), src.Addr, &fired, `max_bulk_len = "1MiB"`)
}
