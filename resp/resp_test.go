package resp

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
)

func TestCommandRoundTrip(t *testing.T) {
	args := [][]byte{[]byte("SET"), []byte("k\r\nwith crlf"), {}, []byte(strings.Repeat("v", 5000))}
	enc := AppendCommand(nil, args...)
	r := NewReader(bytes.NewReader(enc), 64)
	got, err := r.ReadCommand()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(args) {
		t.Fatalf("%d args", len(got))
	}
	for i := range args {
		if !bytes.Equal(got[i], args[i]) {
			t.Errorf("arg %d differs", i)
		}
	}
	if r.Consumed() != int64(len(enc)) {
		t.Errorf("consumed %d of %d bytes", r.Consumed(), len(enc))
	}
}

// The replication offset of a command is the bytes before it: every byte,
// keepalive newlines included, must be counted.
func TestConsumedCountsEveryByte(t *testing.T) {
	stream := "\n\n" + string(AppendCommandStrings(nil, "PING")) + string(AppendCommandStrings(nil, "SELECT", "3"))
	r := NewReader(strings.NewReader(stream), 16)
	var n int
	for {
		args, err := r.ReadCommand()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(args) > 0 {
			n++
		}
	}
	if n != 2 || r.Consumed() != int64(len(stream)) {
		t.Fatalf("%d commands, consumed %d of %d", n, r.Consumed(), len(stream))
	}
}

func TestReadStatus(t *testing.T) {
	in := "+OK\r\n:5\r\n$3\r\nabc\r\n-ERR wrong\r\n*3\r\n+OK\r\n-WRONGTYPE x\r\n:1\r\n*-1\r\n"
	r := NewReader(strings.NewReader(in), 32)
	kinds := []Kind{SimpleString, Integer, Bulk, Error, Array, Array}
	var elemErrs []string
	for i, want := range kinds {
		k, msg, err := r.ReadStatus(func(i int, m string) { elemErrs = append(elemErrs, m) })
		if err != nil {
			t.Fatal(err)
		}
		if k != want {
			t.Errorf("reply %d: kind %q, want %q", i, k, want)
		}
		if i == 3 && msg != "ERR wrong" {
			t.Errorf("error message %q", msg)
		}
		if i == 5 && msg != "null" {
			t.Errorf("null array reported as %q", msg)
		}
	}
	if len(elemErrs) != 1 || elemErrs[0] != "WRONGTYPE x" {
		t.Errorf("element errors %v", elemErrs)
	}
}

func TestProtocolErrors(t *testing.T) {
	for _, in := range []string{"?what\r\n", "$abc\r\n", "*2\r\n$1\r\nx\r\n:1\r\n", "+no crlf\n", "$5\r\nab"} {
		r := NewReader(strings.NewReader(in), 16)
		_, err := r.ReadCommand()
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: %v", in, err)
		}
	}
}

func TestParseCommand(t *testing.T) {
	args, err := ParseCommand(AppendCommandStrings(nil, "HSET", "h", "f", "v"))
	if err != nil || len(args) != 4 || string(args[3]) != "v" {
		t.Fatalf("%q %v", args, err)
	}
}

func BenchmarkReadCommand(b *testing.B) {
	one := AppendCommandStrings(nil, "SET", "key:000123", strings.Repeat("x", 100))
	buf := bytes.Repeat(one, 1000)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(buf), 64<<10)
		for {
			if _, err := r.ReadCommand(); err != nil {
				break
			}
		}
	}
}

func TestSkipRepeated(t *testing.T) {
	in := "+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n-ERR no\r\n+QUEUED\r\n"
	r := NewReader(strings.NewReader(in), 64)
	if _, err := r.br.Peek(1); err != nil { // fill the buffer
		t.Fatal(err)
	}
	q := []byte("+QUEUED\r\n")
	if n := r.SkipRepeated(q, 2); n != 2 {
		t.Fatalf("skipped %d, want 2 (the max)", n)
	}
	if n := r.SkipRepeated(q, 10); n != 1 {
		t.Fatalf("skipped %d, want 1 (up to the error)", n)
	}
	if n := r.SkipRepeated(q, 0); n != 0 {
		t.Fatalf("skipped %d with max 0", n)
	}
	k, msg, err := r.ReadStatus(nil)
	if err != nil || k != Error || msg != "ERR no" {
		t.Fatalf("after the skips: %v %q %v", k, msg, err)
	}
	if n := r.SkipRepeated(q, 10); n != 1 || r.Consumed() != int64(len(in)) {
		t.Fatalf("skipped %d, consumed %d of %d", n, r.Consumed(), len(in))
	}
}

// A stream of commands of every size, read through buffers of many sizes:
// commands whole in the buffer take the fast path, the ones the buffer cuts
// the buffered path; both read the same.
func TestReadCommandFastAndBufferedPaths(t *testing.T) {
	var in []byte
	for i := range 300 {
		args := [][]byte{[]byte("SET"), bytes.Repeat([]byte{'k'}, i%37)}
		if i%5 == 0 {
			args = append(args, bytes.Repeat([]byte("v\r\n"), i))
		}
		if i%11 == 0 {
			in = append(in, '\n') // keepalive
		}
		in = AppendCommand(in, args...)
	}
	for _, size := range []int{16, 17, 31, 64, 100, 257, 1000, 4096, 1 << 16} {
		compareCommandPaths(t, in, size)
		r := NewReader(bytes.NewReader(in), size)
		n := 0
		for {
			args, err := r.ReadCommand()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if args != nil {
				if size >= 1<<16 && r.Raw() == nil {
					t.Fatalf("command %d not read in place with a buffer of %d", n, size)
				}
				if k := len(args[1]); k != n%37 {
					t.Fatalf("buffer %d, command %d: key of %d bytes", size, n, k)
				}
				n++
			}
		}
		if n != 300 || r.Consumed() != int64(len(in)) {
			t.Fatalf("buffer %d: %d commands, consumed %d of %d", size, n, r.Consumed(), len(in))
		}
	}
}

func TestParseInt(t *testing.T) {
	for _, s := range []string{"0", "-0", "-1", "12", "0003", "+3", "-", "", "1a", "999999999999999999", "9999999999999999999", "-999999999999999999", "9223372036854775807", "9223372036854775808", " 1"} {
		got, err := parseInt([]byte(s))
		want, werr := strconv.ParseInt(s, 10, 64)
		if (err == nil) != (werr == nil) || err == nil && got != want {
			t.Errorf("parseInt(%q) = %d, %v; strconv: %d, %v", s, got, err, want, werr)
		}
	}
}

// TestCommandPrefix: the header and the first arguments of an encoded
// command, and refusals of what does not start so.
func TestCommandPrefix(t *testing.T) {
	enc := AppendCommand(nil, []byte("LPUSH"), []byte("queue"), []byte("a"), []byte("b"))
	argc, header, prefix, ok := CommandPrefix(enc, 2)
	if !ok || argc != 4 || header != 4 || string(enc[header:prefix]) != "$5\r\nLPUSH\r\n$5\r\nqueue\r\n" {
		t.Errorf("CommandPrefix(%q, 2) = %d, %d, %d, %v", enc, argc, header, prefix, ok)
	}
	if _, h, p, ok := CommandPrefix(enc, 0); !ok || h != 4 || p != 4 {
		t.Errorf("CommandPrefix(_, 0) = %d, %d, %v", h, p, ok)
	}
	for _, bad := range []string{"", "$3\r\nSET\r\n", "*02\r\n$3\r\nSET\r\n$1\r\nk\r\n", "*2\r\n$3\r\nSET\r\n", "*2\r\n$3\r\nSET\r\n$9\r\nk\r\n", "*1\r\n$3\r\nSET\r\n"} {
		if _, _, _, ok := CommandPrefix([]byte(bad), 2); ok {
			t.Errorf("CommandPrefix(%q, 2) accepted", bad)
		}
	}
}
