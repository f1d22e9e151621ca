//go:build linux

package dial

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferry-dev/ferry/internal/redistest"
)

// pair returns a quiet client connection and the accepted server end, both
// plain *net.TCPConn underneath, on loopback.
func pair(t *testing.T) (*quietConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := Conn(context.Background(), Options{Addr: ln.Addr().String(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	qc, ok := c.(*quietConn)
	if !ok {
		t.Fatalf("Conn returned %T, want *quietConn", c)
	}
	s := (<-accepted).(*net.TCPConn)
	t.Cleanup(func() { qc.Close(); s.Close() })
	return qc, s
}

// TestQuietBulk: 8 MB each way at once, through a peer that reads and
// writes in odd-sized pieces, so that writes fill the socket buffer and go
// out in parts and reads get what is queued; every byte arrives in order.
func TestQuietBulk(t *testing.T) {
	qc, s := pair(t)
	out := make([]byte, 8<<20)
	in := make([]byte, 8<<20)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range out {
		out[i] = byte(rnd.Uint32())
		in[i] = byte(rnd.Uint32())
	}
	errc := make(chan error, 3)
	got := make(chan []byte, 1)
	go func() { // the peer echoes nothing; it reads what qc writes in small pieces
		var b bytes.Buffer
		buf := make([]byte, 7777)
		for b.Len() < len(out) {
			n, err := s.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				errc <- err
				return
			}
		}
		got <- b.Bytes()
		errc <- nil
	}()
	go func() { // and writes its own stream in pieces
		for off := 0; off < len(in); off += 100003 {
			if _, err := s.Write(in[off:min(off+100003, len(in))]); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	go func() {
		n, err := qc.Write(out)
		if err == nil && n != len(out) {
			err = io.ErrShortWrite
		}
		errc <- err
	}()
	read, err := io.ReadAll(io.LimitReader(qc, int64(len(in))))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(read, in) {
		t.Error("quiet reads: the bytes differ from what the peer wrote")
	}
	if !bytes.Equal(<-got, out) {
		t.Error("writes: the peer got other bytes than were written")
	}
}

// TestQuietEnds: how a quiet connection reports the ways a connection ends
// is how package net reports them, so callers' checks keep working.
func TestQuietEnds(t *testing.T) {
	t.Run("peer closes", func(t *testing.T) {
		qc, s := pair(t)
		s.Write([]byte("last"))
		s.Close()
		b, err := io.ReadAll(qc)
		if err != nil || string(b) != "last" {
			t.Fatalf("ReadAll = %q, %v; want \"last\", nil (io.EOF ends it)", b, err)
		}
		if n, err := qc.Read(make([]byte, 4)); n != 0 || err != io.EOF {
			t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
		}
	})
	t.Run("peer resets", func(t *testing.T) {
		qc, s := pair(t)
		s.SetLinger(0)
		s.Close()
		_, err := qc.Read(make([]byte, 4))
		if !errors.Is(err, syscall.ECONNRESET) || !strings.HasPrefix(err.Error(), "read tcp ") {
			t.Fatalf("Read = %v; want a \"read tcp …\" error that is ECONNRESET", err)
		}
		var err2 error
		for range 100 { // the first write after a reset may still be taken
			if _, err2 = qc.Write([]byte("x")); err2 != nil {
				break
			}
		}
		if !errors.Is(err2, syscall.EPIPE) && !errors.Is(err2, syscall.ECONNRESET) || !strings.HasPrefix(err2.Error(), "write tcp ") {
			t.Fatalf("Write = %v; want a \"write tcp …\" error that is EPIPE or ECONNRESET", err2)
		}
	})
	t.Run("read deadline", func(t *testing.T) {
		qc, _ := pair(t)
		qc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := qc.Read(make([]byte, 4))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !strings.HasPrefix(err.Error(), "read tcp ") {
			t.Fatalf("Read = %v; want a \"read tcp …\" timeout", err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		qc, _ := pair(t) // the peer never reads
		qc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := qc.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) || n <= 0 || n >= 64<<20 || !strings.HasPrefix(err.Error(), "write tcp ") {
			t.Fatalf("Write = %d, %v; want part written and a \"write tcp …\" timeout", n, err)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		qc, _ := pair(t)
		time.AfterFunc(50*time.Millisecond, func() { qc.Close() })
		_, err := qc.Read(make([]byte, 4))
		if !errors.Is(err, net.ErrClosed) || !strings.HasPrefix(err.Error(), "read tcp ") {
			t.Fatalf("Read = %v; want a \"read tcp …\" error that is net.ErrClosed", err)
		}
	})
	t.Run("socket options", func(t *testing.T) {
		qc, _ := pair(t)
		// reader.lowWater sets SO_RCVLOWAT through syscall.Conn.
		if _, ok := net.Conn(qc).(syscall.Conn); !ok {
			t.Fatal("a quiet connection is not a syscall.Conn")
		}
	})
}

// BenchmarkRoundTrip: GET of a 16 KiB value from a real redis-server, one
// round trip per op, as ferry's connections work: write, wait idle for the
// reply, read. "net" is package net's connection (the anchor), "quiet" the
// same socket through quietConn. cpu-us/op is this process's CPU (all its
// threads, the runtime's included) per round trip: what quietConn saves.
func BenchmarkRoundTrip(b *testing.B) {
	redistest.Require(b)
	srv := redistest.Start(b)
	val := strings.Repeat("v", 16<<10)
	if err := srv.Client(b).Set(context.Background(), "k", val, 0).Err(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"net", "quiet"} {
		b.Run(mode, func(b *testing.B) {
			nc, err := net.Dial("tcp", srv.Addr)
			if err != nil {
				b.Fatal(err)
			}
			c := nc
			if mode == "quiet" {
				c = quiet(nc)
			}
			defer c.Close()
			req := []byte("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n")
			reply := make([]byte, len(fmt.Sprintf("$%d\r\n%s\r\n", len(val), val)))
			b.SetBytes(int64(len(reply)))
			cpu0 := cpuTime()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, reply); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
		})
	}
}

// cpuTime is the CPU this process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestQuietLeash: with the only P kept busy by a goroutine that never
// blocks, a reply that arrives on a quiet connection is still read within a
// few of sysmon's 10 ms periods: something must preempt the busy goroutine
// and poll the network, and a quiet read no longer wakes sysmon (see
// quietConn). The busy spell starts on a reply after 200 ms of idleness,
// as a live stream's bursts do, so sysmon is asleep when it starts; without
// the leash the second reply waited until the busy goroutine ended.
func TestQuietLeash(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	var cs [2]net.Conn
	for i := range cs {
		c, err := Conn(context.Background(), Options{Addr: srv.Addr, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))

	const busy = 2 * time.Second
	// BLPOP with a timeout: the server answers by itself, later.
	cs[0].Write([]byte("BLPOP q0 0.2\r\n"))
	cs[1].Write([]byte("BLPOP q1 0.3\r\n"))
	sent := time.Now()
	spun := make(chan struct{})
	go func() { // woken by the first reply, then holds the only P
		cs[0].Read(make([]byte, 64))
		for time.Since(sent) < 200*time.Millisecond+busy {
		}
		close(spun)
	}()
	var at time.Time
	if _, err := cs[1].Read(make([]byte, 64)); err != nil {
		t.Fatal(err)
	}
	at = time.Now()
	<-spun
	if wait := at.Sub(sent); wait > time.Second {
		t.Fatalf("the reply due after 300 ms was read after %s, with the only P busy from 200 ms on: nothing woke the scheduler", wait.Round(time.Millisecond))
	} else {
		t.Logf("the reply due after 300 ms was read after %s", wait.Round(time.Millisecond))
	}
}
