package resp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
)

// hostile are byte sequences a peer may send instead of a reply.
var hostile = map[string]string{
	"deep nesting":   strings.Repeat("*1\r\n", 1_000_000),
	"4 GiB bulk":     "$4294967296\r\n",
	"2^31 array":     "*2147483647\r\n",
	"3 MiB line":     "+" + strings.Repeat("x", 3<<20) + "\r\n",
	"garbage":        "\x00\x01hello\r\n",
	"bad length":     "$12x\r\n",
	"huge length":    "$99999999999999999999999\r\n",
	"negative array": "*-5\r\n",
}

// Every reading entry point ends a hostile reply with an error (or a null)
// without allocating from a declared length.
func TestHostileReplies(t *testing.T) {
	for name, in := range hostile {
		t.Run(name, func(t *testing.T) {
			for _, read := range []struct {
				name string
				fn   func(r *Reader) error
			}{
				{"ReadValue", func(r *Reader) error { _, err := r.ReadValue(); return err }},
				{"ReadStatus", func(r *Reader) error { _, _, err := r.ReadStatus(nil); return err }},
				{"ReadCommand", func(r *Reader) error { _, err := r.ReadCommand(); return err }},
			} {
				r := NewReader(strings.NewReader(in), 1<<20)
				r.SetLimits(ReplyLimits())
				err := read.fn(r)
				if name == "negative array" && read.name != "ReadCommand" {
					if err != nil {
						t.Errorf("%s: a null array is a reply: %v", read.name, err)
					}
					continue
				}
				if err == nil {
					t.Errorf("%s: no error", read.name)
					continue
				}
				if !errors.Is(err, ErrProtocol) && !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("%s: %v, want a protocol error", read.name, err)
				}
			}
		})
	}
}

func TestLimitErrors(t *testing.T) {
	lim := Limits{MaxBulk: 10, MaxArray: 3, MaxDepth: 2}
	for _, c := range []struct{ in, what string }{
		{"$11\r\n", "bulk string"},
		{"*4\r\n", "array"},
		{"*1\r\n*1\r\n*1\r\n:1\r\n", "nesting"},
	} {
		r := NewReader(strings.NewReader(c.in), 64)
		r.SetLimits(lim)
		_, err := r.ReadValue()
		var le *LimitError
		if !errors.As(err, &le) || le.What != c.what || !errors.Is(err, ErrProtocol) {
			t.Errorf("%q: %v, want a %s limit", c.in, err, c.what)
		}
	}
	// Within the limits.
	r := NewReader(strings.NewReader("*1\r\n*3\r\n$10\r\n0123456789\r\n:1\r\n*0\r\n"), 64)
	r.SetLimits(lim)
	v, err := r.ReadValue()
	if err != nil || len(v.Elems) != 1 || string(v.Elems[0].Elems[0].Str) != "0123456789" {
		t.Fatalf("%+v %v", v, err)
	}
}

// A declared length allocates at most one chunk ahead of the data that came.
func TestMemoryFollowsData(t *testing.T) {
	const declared = 256 << 20
	sent := bytes.Repeat([]byte("x"), 100<<10)
	for _, tc := range []struct {
		name string
		hdr  string
		read func(r *Reader) error
	}{
		{"ReadValue", "$268435456\r\n", func(r *Reader) error { _, err := r.ReadValue(); return err }},
		{"ReadCommand", "*1\r\n$268435456\r\n", func(r *Reader) error { _, err := r.ReadCommand(); return err }},
	} {
		in := append([]byte(tc.hdr), sent...)
		r := NewReader(bytes.NewReader(in), 64<<10)
		before := memAlloc()
		err := tc.read(r)
		after := memAlloc()
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: %v, want unexpected EOF", tc.name, err)
		}
		if grew := after - before; grew > 8*int64(len(sent)) {
			t.Errorf("%s: %d bytes allocated for %d sent (declared %d)", tc.name, grew, len(sent), declared)
		}
	}
}

func TestGuardScanner(t *testing.T) {
	ok := []string{
		"+OK\r\n", "-ERR x\r\n", ":12\r\n", "$3\r\nabc\r\n", "$-1\r\n", "*-1\r\n", "*0\r\n",
		"*2\r\n*1\r\n$1\r\nx\r\n:3\r\n", "%1\r\n+k\r\n*1\r\n:1\r\n", "|1\r\n+a\r\n+b\r\n+reply\r\n",
		"_\r\n", ",1.5\r\n", "=7\r\ntxt:abc\r\n", "~1\r\n#t\r\n",
	}
	for _, in := range ok {
		// Byte by byte and in one piece.
		s := NewScanner(ReplyLimits())
		for i := range len(in) {
			if err := s.Scan([]byte{in[i]}); err != nil {
				t.Errorf("%q: %v", in, err)
			}
		}
		if len(s.stack) != 0 || s.inLine || s.body != 0 {
			t.Errorf("%q: not at a reply boundary: %+v", in, s)
		}
		if err := NewScanner(ReplyLimits()).Scan([]byte(in + in)); err != nil {
			t.Errorf("%q twice: %v", in, err)
		}
	}
	for name, in := range hostile {
		if name == "negative array" {
			continue
		}
		if err := NewScanner(ReplyLimits()).Scan([]byte(in)); !errors.Is(err, ErrProtocol) {
			t.Errorf("%s: %v, want a protocol error", name, err)
		}
	}
}

// Guard passes a good reply through and refuses a hostile one, for good.
func TestGuardConn(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	g := Guard(client, ReplyLimits())
	go func() {
		server.Write([]byte("+OK\r\n"))
		server.Write([]byte("$4294967296\r\n"))
	}()
	buf := make([]byte, 5)
	if n, err := io.ReadFull(g, buf); err != nil || string(buf[:n]) != "+OK\r\n" {
		t.Fatalf("%q %v", buf[:n], err)
	}
	_, err := g.Read(make([]byte, 64))
	var le *LimitError
	if !errors.As(err, &le) || le.What != "bulk string" {
		t.Fatalf("%v, want a bulk string limit", err)
	}
	if _, err2 := g.Read(make([]byte, 64)); err2 != err {
		t.Fatalf("after the violation: %v", err2)
	}
}

// A long bulk string reaches the reader behind the Guard only once all of
// it arrived; everything else passes as it comes, byte for byte.
func TestGuardHoldsLongBulk(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	g := Guard(client, ValueLimits())
	body := bytes.Repeat([]byte("v"), 200<<10)
	first := []byte("*2\r\n:1\r\n$204800\r\n")
	go func() {
		server.Write(first)
		server.Write(body[:100<<10])
		server.Write(body[100<<10:])
		server.Write([]byte("\r\n+OK\r\n"))
	}()
	// Up to the header's '\n', not including it.
	got := make([]byte, len(first)-1)
	if _, err := io.ReadFull(g, got); err != nil || !bytes.Equal(got, first[:len(first)-1]) {
		t.Fatalf("%q %v", got, err)
	}
	rest := make([]byte, 1+len(body)+2+5)
	n, err := g.Read(rest)
	if err != nil || n < 1+len(body)+2 {
		t.Fatalf("first read after the header: %d bytes (%v), want the whole bulk string", n, err)
	}
	if _, err := io.ReadFull(g, rest[n:]); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte("\n"), body...), "\r\n+OK\r\n"...)
	if !bytes.Equal(rest, want) {
		t.Fatal("the bytes differ from what was sent")
	}
}
