package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// Limits small enough that the fuzzer reaches every one of them.
var fuzzLimits = Limits{MaxBulk: 1 << 10, MaxArray: 64, MaxDepth: 4, MaxLine: 256}

func fuzzSeeds(f *testing.F) {
	for _, s := range []string{
		"+OK\r\n", "-ERR no\r\n", ":1\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
		"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n",
		"$4294967296\r\n", "*2147483647\r\n", "$5\r\nab", "*3\r\n+OK\r\n-WRONGTYPE x\r\n:1\r\n",
		"\n\n*1\r\n$4\r\nPING\r\n", "%1\r\n+k\r\n+v\r\n", "$+3\r\nabc\r\n", "$0003\r\nabc\r\n",
	} {
		f.Add([]byte(s))
	}
}

// FuzzReadValue: any input ends in a value or an error, never a panic, with
// consumed bytes within the input; a reply the Reader accepts the Guard
// accepts too.
func FuzzReadValue(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 64)
		r.SetLimits(fuzzLimits)
		for {
			_, err := r.ReadValue()
			if r.Consumed() > int64(len(in)) {
				t.Fatalf("consumed %d of %d bytes", r.Consumed(), len(in))
			}
			if err != nil {
				checkErr(t, err)
				break
			}
			if serr := NewScanner(fuzzLimits).Scan(in[:r.Consumed()]); serr != nil {
				t.Fatalf("the reader accepted %q, the guard refused it: %v", in[:r.Consumed()], serr)
			}
		}
	})
}

// FuzzReadStatus: as FuzzReadValue for the writer's reply reader.
func FuzzReadStatus(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 64)
		r.SetLimits(fuzzLimits)
		for {
			_, _, err := r.ReadStatus(func(int, string) {})
			if r.Consumed() > int64(len(in)) {
				t.Fatalf("consumed %d of %d bytes", r.Consumed(), len(in))
			}
			if err != nil {
				checkErr(t, err)
				return
			}
		}
	})
}

// FuzzReadCommand: the replication stream reader; a command it reads
// encodes back to exactly the bytes it consumed.
func FuzzReadCommand(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(bytes.NewReader(in), 64)
		r.SetLimits(fuzzLimits)
		for {
			before := r.Consumed()
			args, err := r.ReadCommand()
			if r.Consumed() > int64(len(in)) {
				t.Fatalf("consumed %d of %d bytes", r.Consumed(), len(in))
			}
			if err != nil {
				checkErr(t, err)
				return
			}
			if len(args) > int(fuzzLimits.MaxArray) {
				t.Fatalf("%d args over the limit", len(args))
			}
			if args == nil {
				continue // a keepalive newline
			}
			// Lengths may be spelled differently ("$03"): the encoding
			// of what was read must read back the same.
			back, perr := ParseCommand(AppendCommand(nil, args...))
			if perr != nil || len(back) != len(args) {
				t.Fatalf("%q read as %q, which does not read back: %v", in[before:r.Consumed()], args, perr)
			}
			for i := range back {
				if !bytes.Equal(back[i], args[i]) {
					t.Fatalf("arg %d: %q read back as %q", i, args[i], back[i])
				}
			}
		}
	})
}

// FuzzGuard: the scanner never panics, and what it accepts in one piece it
// accepts byte by byte with the same verdict.
func FuzzGuard(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := NewScanner(fuzzLimits).Scan(in)
		s := NewScanner(fuzzLimits)
		var split error
		for i := range in {
			if split = s.Scan(in[i : i+1]); split != nil {
				break
			}
		}
		if (whole == nil) != (split == nil) {
			t.Fatalf("%q: whole %v, byte by byte %v", in, whole, split)
		}
		if whole != nil {
			checkErr(t, whole)
		}
		if len(s.stack) > fuzzLimits.MaxDepth {
			t.Fatalf("depth %d", len(s.stack))
		}
		// Through the Guard, read in small pieces: a prefix of the input
		// comes out, all of it when it was accepted and no long bulk
		// string is incomplete at the end.
		g := newGuard(&chunkConn{b: in}, fuzzLimits, 8)
		var out []byte
		buf := make([]byte, 3)
		var gerr error
		for {
			n, err := g.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				gerr = err
				break
			}
		}
		if !bytes.HasPrefix(in, out) {
			t.Fatalf("%q came out of %q", out, in)
		}
		if whole == nil && !g.s.holding && !bytes.Equal(out, in) {
			t.Fatalf("%q came out of %q (%v)", out, in, gerr)
		}
		if whole != nil && !errors.Is(gerr, ErrProtocol) {
			t.Fatalf("the Guard ended with %v, the scanner with %v", gerr, whole)
		}
	})
}

// chunkConn is a net.Conn that reads b in pieces of up to 5 bytes.
type chunkConn struct {
	net.Conn
	b []byte
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.b[:min(5, len(c.b))])
	c.b = c.b[n:]
	return n, nil
}

func checkErr(t *testing.T, err error) {
	t.Helper()
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrProtocol) {
		return
	}
	t.Fatalf("unexpected error %v", err)
}

// FuzzReadCommandPaths: ReadCommand's in-buffer fast path reads exactly what
// the buffered path reads (args, consumed bytes, errors), whatever the
// buffer size cuts.
func FuzzReadCommandPaths(f *testing.F) {
	for _, s := range []string{"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n", "\n\n*1\r\n$4\r\nPING\r\n", "*1\r\n$+3\r\nabc\r\n", "*1\r\n$0003\r\nabc\r\n", "*0\r\n", "*2147483647\r\n"} {
		f.Add([]byte(s), uint8(0))
	}
	f.Add([]byte("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n"), uint8(7))
	f.Add([]byte("*1\r\n$-1\r\n*2\r\n$1\r\na\r\n$1\r\nbX\n"), uint8(20))
	f.Fuzz(func(t *testing.T, in []byte, size uint8) {
		compareCommandPaths(t, in, 16+int(size))
	})
}

// compareCommandPaths reads in with ReadCommand and with its buffered path
// alone, and fails on any difference.
func compareCommandPaths(t *testing.T, in []byte, size int) {
	t.Helper()
	fast := NewReader(bytes.NewReader(in), size)
	slow := NewReader(bytes.NewReader(in), size)
	fast.SetLimits(fuzzLimits)
	slow.SetLimits(fuzzLimits)
	for k := 0; ; k++ {
		a, ferr := fast.ReadCommand()
		b, serr := slow.readCommand()
		if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
			t.Fatalf("command %d of %q (buffer %d): fast path %v, buffered path %v", k, in, size, ferr, serr)
		}
		if fast.Consumed() != slow.Consumed() {
			t.Fatalf("command %d of %q (buffer %d): consumed %d and %d", k, in, size, fast.Consumed(), slow.Consumed())
		}
		if ferr != nil {
			return
		}
		if len(a) != len(b) || (a == nil) != (b == nil) {
			t.Fatalf("command %d of %q (buffer %d): %q and %q", k, in, size, a, b)
		}
		for i := range a {
			if !bytes.Equal(a[i], b[i]) {
				t.Fatalf("command %d of %q (buffer %d): arg %d %q and %q", k, in, size, i, a[i], b[i])
			}
		}
		if raw := fast.Raw(); raw != nil && !bytes.Equal(raw, AppendCommand(nil, a...)) {
			t.Fatalf("command %d of %q (buffer %d): raw %q, encoded %q", k, in, size, raw, AppendCommand(nil, a...))
		}
	}
}
