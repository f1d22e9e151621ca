package reader

import (
	"context"
	crand "crypto/rand"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/ferry-dev/ferry/dial"
	"github.com/ferry-dev/ferry/internal/redistest"
)

// countWriter counts what the reader writes to its spool.
type countWriter struct{ n atomic.Int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// heapObjects is the Go heap's live and not yet collected objects.
func heapObjects() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// scanPeak makes one pass over the source with the given BigValue and
// returns the reader's stats and the most the Go heap grew meanwhile.
func scanPeak(t *testing.T, addr string, bigValue int64) (Stats, int64, int64) {
	t.Helper()
	var out countWriter
	s := NewScan(ScanConfig{Dial: dial.Options{Addr: addr, Timeout: 5 * time.Second}, Name: "ferry-reader-0", BigValue: bigValue, Log: zerolog.Nop()}, &out)
	// A tight GC goal: the growth measured is what the reader holds, not
	// garbage waiting for a collection.
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	runtime.GC()
	base := heapObjects()
	var peak atomic.Int64
	sampled := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			if h := heapObjects() - base; h > peak.Load() {
				peak.Store(h)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	ran := make(chan error, 1)
	go func() { ran <- s.Run(ctx, Start{}) }()
	deadline := time.Now().Add(2 * time.Minute)
	for s.Stats().Phase != "streaming" {
		if time.Now().After(deadline) {
			t.Fatalf("the pass did not finish: %+v", s.Stats())
		}
		select {
		case err := <-ran:
			t.Fatalf("the reader ended: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	st := s.Stats()
	cancel()
	<-sampled
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	return st, peak.Load(), out.n.Load()
}

// TestScanBigValueMemory: a 50 MB hash read in pieces costs the reader a
// few MiB at most (its own accounting, and the Go heap's growth), where one
// DUMP of it costs at least its size.
func TestScanBigValueMemory(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	const fields, size = 50000, 1000 // random: DUMP does not compress it
	for i := 0; i < fields; i += 1000 {
		args := make([]any, 0, 2000)
		for j := i; j < i+1000; j++ {
			v := make([]byte, size)
			crand.Read(v)
			args = append(args, "f"+strconv.Itoa(j), v)
		}
		if err := c.HSet(ctx, "big", args...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(ctx, "small", "v", 0)
	const value = fields * size

	st, peak, wrote := scanPeak(t, srv.Addr, 1<<20)
	t.Logf("in pieces: %d values, a piece held at most %d bytes, the heap grew by at most %d bytes; %d bytes written", st.BigValues, st.PeakPiece, peak, wrote)
	if st.BigValues != 1 || st.ScanKeys != 2 {
		t.Fatalf("stats %+v: want the hash read in pieces and both keys read", st)
	}
	if st.PeakPiece > 4<<20 {
		t.Errorf("a piece held %d bytes, want at most 4 MiB", st.PeakPiece)
	}
	if peak > 16<<20 {
		t.Errorf("the heap grew by %d bytes while a %d-byte value was read in pieces, want at most 16 MiB", peak, value)
	}
	if wrote < value {
		t.Errorf("wrote %d bytes, want the value's %d at least", wrote, value)
	}

	// The measure measures: one DUMP of the value costs at least its size.
	st, whole, _ := scanPeak(t, srv.Addr, -1)
	t.Logf("whole: %d values in pieces, the heap grew by at most %d bytes", st.BigValues, whole)
	if st.BigValues != 0 || whole < value {
		t.Errorf("with one DUMP: %d values in pieces, the heap grew by %d bytes; want 0 and at least %d", st.BigValues, whole, value)
	}
}

// BenchmarkScanPass: a pass over 100000 small keys, with every key sized
// (MEMORY USAGE in the pipeline of the DUMPs) and without.
func BenchmarkScanPass(b *testing.B) {
	redistest.Require(b)
	srv := redistest.Start(b)
	c := srv.Client(b)
	const keys = 100000
	if err := c.Do(context.Background(), "DEBUG", "POPULATE", keys, "k", 100).Err(); err != nil {
		b.Skip("DEBUG POPULATE:", err)
	}
	for _, bc := range []struct {
		name string
		big  int64
	}{{"sized", DefaultBigValue}, {"unsized", -1}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				var out countWriter
				s := NewScan(ScanConfig{Dial: dial.Options{Addr: srv.Addr, Timeout: 5 * time.Second}, Name: "ferry-reader-0", BigValue: bc.big, Log: zerolog.Nop()}, &out)
				ctx, cancel := context.WithCancel(context.Background())
				ran := make(chan error, 1)
				go func() { ran <- s.Run(ctx, Start{}) }()
				for s.Stats().Phase != "streaming" {
					select {
					case err := <-ran:
						b.Fatalf("the reader ended: %v", err)
					case <-time.After(time.Millisecond):
					}
				}
				cancel()
				if err := <-ran; err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(keys)*float64(b.N)/b.Elapsed().Seconds(), "keys/s")

		})
	}
}

func TestNextID(t *testing.T) {
	for in, want := range map[string]string{"1-1": "1-2", "0-0": "0-1", "5-18446744073709551615": "6-0"} {
		if got, err := nextID([]byte(in)); err != nil || string(got) != want {
			t.Errorf("nextID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := nextID([]byte("x")); err == nil {
		t.Error("nextID(x): want an error")
	}
}

// TestScanBigValueACL: with the README's least ACL plus the commands it
// lists for big values, big values are read in pieces; with MEMORY USAGE
// but not the piece commands, each is read with one DUMP (after a
// warning); without MEMORY USAGE every value is.
func TestScanBigValueACL(t *testing.T) {
	redistest.Require(t)
	srv := redistest.Start(t, "--notify-keyspace-events", "KEA")
	c := srv.Client(t)
	ctx := context.Background()
	redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: 50, DBs: []int{0, 1}, Big: true, Seed: 7})
	keys := int64(0)
	for _, db := range []int{0, 1} {
		cdb := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: db})
		n, err := cdb.DBSize(ctx).Result()
		cdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		keys += n
	}
	least := []any{"-@all", "+scan", "+dump", "+pttl", "+info", "+select", "+psubscribe", "+subscribe", "+ping",
		"+client|id", "+client|tracking", "+client|setname", "+function|dump",
		"+set", "+del", "+rpush", "+sadd", "+hset", "+zadd", "+xadd", "+exists",
		"%R~*", "~__ferry:probe:*", "&__keyevent@*__:*", "&__redis__:invalidate"}
	var leastWrote int64
	pieces := strings.Fields("+type +hlen +scard +zcard +llen +xlen +strlen +hscan +sscan +zscan +lrange +getrange +xrange +xinfo +xpending")
	for _, tc := range []struct {
		name  string
		extra []string
		big   bool
	}{
		{"least", nil, false},
		{"memory", []string{"+memory|usage"}, false},
		{"pieces", append([]string{"+memory|usage"}, pieces...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]any{"ACL", "SETUSER", "u-" + tc.name, "on", ">pw"}, least...)
			for _, e := range tc.extra {
				args = append(args, e)
			}
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatal(err)
			}
			var out countWriter
			s := NewScan(ScanConfig{Dial: dial.Options{Addr: srv.Addr, Username: "u-" + tc.name, Password: "pw", Timeout: 5 * time.Second},
				Name: "ferry-reader-0", BigValue: 64 << 10, Log: zerolog.Nop()}, &out)
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			ran := make(chan error, 1)
			go func() { ran <- s.Run(sctx, Start{}) }()
			redistest.WaitFor(t, time.Minute, func() bool {
				select {
				case err := <-ran:
					t.Fatalf("the reader ended: %v", err)
				default:
				}
				return s.Stats().Phase == "streaming"
			}, "the pass")
			st := s.Stats()
			cancel()
			<-ran
			if st.ScanKeys != keys || (st.BigValues > 0) != tc.big {
				t.Errorf("stats %+v: want %d keys read, big values in pieces: %v", st, keys, tc.big)
			}
			// Without the piece commands the big values are DUMPed: as
			// many bytes as with the least ACL.
			if wrote := out.n.Load(); tc.name == "least" {
				leastWrote = wrote
			} else if !tc.big && wrote < leastWrote {
				t.Errorf("wrote %d bytes, want the %d of the least ACL", wrote, leastWrote)
			}
		})
	}
}
