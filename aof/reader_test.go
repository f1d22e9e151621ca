package aof

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func enc(args ...string) string {
	s := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		s += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	return s
}

func write(t testing.TB, dir, name, data string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readAll reads every command as "a b c" strings.
func readAll(t testing.TB, src *Source) ([]string, *Reader, error) {
	t.Helper()
	r := NewReader(src, Options{BufSize: 16})
	defer r.Close()
	if _, _, ok, err := r.RDB(); err != nil || ok {
		t.Fatalf("RDB: ok=%v err=%v", ok, err)
	}
	var out []string
	for {
		c, err := r.Next()
		if err == io.EOF {
			return out, r, nil
		}
		if err != nil {
			return out, r, err
		}
		var s []string
		for _, a := range c.Args {
			s = append(s, string(a))
		}
		out = append(out, strings.Join(s, " "))
	}
}

func TestSingleFile(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", 100000)
	data := enc("SELECT", "0") + "#TS:1700000000\r\n" + enc("SET", "k", big) + enc("MULTI") + enc("INCR", "n") + enc("EXEC") + enc("SET", "e", "")
	p := write(t, dir, "appendonly.aof", data)
	src, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got, r, err := readAll(t, src)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"SELECT 0", "SET k " + big, "MULTI", "INCR n", "EXEC", "SET e "}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %d commands %.80q", len(got), got)
	}
	if r.Truncated() != nil {
		t.Fatalf("truncated: %+v", r.Truncated())
	}
}

func TestTruncatedLast(t *testing.T) {
	dir := t.TempDir()
	whole := enc("SET", "a", "1") + enc("SET", "b", "2")
	for _, tc := range []struct {
		name, tail string
		multi      bool
		want       []string
	}{
		{"mid-arg", enc("SET", "c", "3")[:15], false, []string{"SET a 1", "SET b 2"}},
		{"no-crlf", strings.TrimSuffix(enc("SET", "c", "3"), "\r\n"), false, []string{"SET a 1", "SET b 2"}},
		{"star", "*", false, []string{"SET a 1", "SET b 2"}},
		{"lying-length", "*2\r\n$3\r\nSET\r\n$999999999999\r\nabc", false, []string{"SET a 1", "SET b 2"}},
		{"multi-open", enc("MULTI") + enc("INCR", "x"), true, []string{"SET a 1", "SET b 2", "MULTI", "INCR x"}},
		{"multi-cut", enc("MULTI") + enc("INCR", "x")[:7], true, []string{"SET a 1", "SET b 2", "MULTI"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, tc.name+".aof", whole+tc.tail)
			src, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			got, r, err := readAll(t, src)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q want %q", got, tc.want)
			}
			tr := r.Truncated()
			if tr == nil || tr.Offset != int64(len(whole)) || tr.File != p || tr.Multi != tc.multi || tr.Size != int64(len(whole+tc.tail)) {
				t.Fatalf("truncation %+v, want offset %d multi %v", tr, len(whole), tc.multi)
			}
		})
	}
}

func TestDamaged(t *testing.T) {
	dir := t.TempDir()
	good := enc("SET", "a", "1")
	for _, tc := range []struct{ name, bad, msg string }{
		{"garbage", "hello\r\n", "expected '*'"},
		{"argc", "*x\r\n", "bad argument count"},
		{"zero", "*0\r\n", "bad argument count"},
		{"dollar", "*1\r\n+OK\r\n", "expected '$'"},
		{"len", "*1\r\n$-1\r\n", "bad length"},
		{"crlf", "*1\r\n$3\r\nSETxx", "not followed by"},
		{"lf", "*1\n", "not ended by"},
		{"long", "*" + strings.Repeat("1", 100) + "\r\n", "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, dir, tc.name+".aof", good+tc.bad+good)
			src, _ := Open(p)
			_, _, err := readAll(t, src)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != p || fe.Offset != int64(len(good)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want a FormatError at %s offset %d with %q", err, p, len(good), tc.msg)
			}
		})
	}
}

// TestGrowingFile: a file is read as it was when opened; what a server
// appends meanwhile is not read, and a command it was writing is a cut.
func TestGrowingFile(t *testing.T) {
	p := write(t, t.TempDir(), "a.aof", enc("SET", "a", "1")+enc("SET", "b", "2")[:10])
	src, _ := Open(p)
	r := NewReader(src, Options{BufSize: 16})
	defer r.Close()
	r.RDB()
	f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(enc("SET", "b", "2")[10:] + enc("SET", "c", "3"))
	f.Close()
	if c, err := r.Next(); err != nil || string(c.Args[1]) != "a" {
		t.Fatalf("%v %v", c, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
	if tr := r.Truncated(); tr == nil || tr.Offset != int64(len(enc("SET", "a", "1"))) {
		t.Fatalf("truncation %+v", tr)
	}
}

func TestMaxArg(t *testing.T) {
	p := write(t, t.TempDir(), "a.aof", enc("SET", "k", strings.Repeat("v", 100)))
	src, _ := Open(p)
	r := NewReader(src, Options{MaxArg: 50})
	defer r.Close()
	r.RDB()
	_, err := r.Next()
	if err == nil || !strings.Contains(err.Error(), "offset 0: argument 3 of 100 bytes exceeds the limit of 50") {
		t.Fatalf("err %v", err)
	}
}

func TestMaxCommand(t *testing.T) {
	p := write(t, t.TempDir(), "a.aof", enc("MSET", "a", strings.Repeat("v", 40), "b", strings.Repeat("w", 40)))
	src, _ := Open(p)
	r := NewReader(src, Options{MaxArg: 50, MaxCommand: 70})
	defer r.Close()
	r.RDB()
	_, err := r.Next()
	if err == nil || !strings.Contains(err.Error(), "offset 0: command of more than 70 bytes (argument 5)") {
		t.Fatalf("err %v", err)
	}
}

func TestManifest(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "appendonly.aof.1.base.aof", enc("SET", "base", "1"))
	write(t, dir, "appendonly.aof.1.incr.aof", enc("SET", "i1", "1"))
	write(t, dir, "my file.2.incr.aof", enc("SET", "i2", "1")+enc("SET", "cut", "1")[:9])
	write(t, dir, "appendonly.aof.0.base.rdb", "not read: history")
	write(t, dir, "appendonly.aof.manifest", "# comment\n"+
		"file appendonly.aof.0.base.rdb seq 0 type h\n"+
		"file appendonly.aof.1.base.aof seq 1 type b\n"+
		"file appendonly.aof.1.incr.aof seq 1 type i\r\n"+
		"type i seq 2 file \"my\\x20file.2.incr.aof\"\n")
	src, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.Files) != 3 || src.Files[0].Type != Base || src.Files[2].Name != "my file.2.incr.aof" {
		t.Fatalf("files %+v", src.Files)
	}
	got, r, err := readAll(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SET base 1", "SET i1 1", "SET i2 1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q", got)
	}
	if tr := r.Truncated(); tr == nil || filepath.Base(tr.File) != "my file.2.incr.aof" {
		t.Fatalf("truncation %+v", tr)
	}

	// A cut in a file that is not the last is damage.
	write(t, dir, "appendonly.aof.1.incr.aof", enc("SET", "i1", "1")[:5])
	_, _, err = readAll(t, src)
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "appendonly.aof.1.incr.aof at offset 0: ends inside a command, and it is not the last file") {
		t.Fatalf("err %v", err)
	}
}

func TestManifestErrors(t *testing.T) {
	for _, tc := range []struct{ m, msg string }{
		{"", "is empty"},
		{"# only\n", "is empty"},
		{"file a seq 1\n", "not \"file NAME"},
		{"file a seq 1 type x\n", "unknown file type"},
		{"file ../a seq 1 type i\n", "not a plain name"},
		{"file a seq x type i\n", "bad sequence number"},
		{"file a seq 1 type b\nfile b seq 2 type b\n", "second base"},
		{"file a seq 2 type i\nfile b seq 1 type i\n", "does not follow"},
		{"file \"a seq 1 type i\n", "unbalanced quotes"},
		{"seq 1 type i x y\n", "no file name"},
	} {
		_, err := ParseManifest(strings.NewReader(tc.m), "m")
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%q: err %v, want %q", tc.m, err, tc.msg)
		}
	}
	dir := t.TempDir()
	write(t, dir, "appendonly.aof.manifest", "file gone.aof seq 1 type i\n")
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "gone.aof") {
		t.Errorf("missing file: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *.manifest") {
		t.Errorf("no manifest: %v", err)
	}
}

func TestRDBPreamble(t *testing.T) {
	dir := t.TempDir()
	rdbPart := "REDIS0010<rdb bytes>"
	p := write(t, dir, "appendonly.aof", rdbPart+enc("SET", "after", "1"))
	src, _ := Open(p)
	r := NewReader(src, Options{})
	defer r.Close()
	rd, size, ok, err := r.RDB()
	if err != nil || !ok || size != int64(len(rdbPart)+len(enc("SET", "after", "1"))) {
		t.Fatalf("RDB: %v %v %d", ok, err, size)
	}
	head := make([]byte, 9)
	if _, err := io.ReadFull(rd, head); err != nil || string(head) != "REDIS0010" {
		t.Fatalf("head %q %v", head, err)
	}
	if err := r.SkipRDB(int64(len(rdbPart))); err != nil {
		t.Fatal(err)
	}
	c, err := r.Next()
	if err != nil || string(c.Args[1]) != "after" || c.Offset != int64(len(rdbPart)) || c.End != size {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
}

// FuzzManifest: any manifest text parses into files or an error; never a
// panic, and never a file name that leaves the directory.
func FuzzManifest(f *testing.F) {
	f.Add([]byte("file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"))
	f.Add([]byte("file \"a\\x41 b\" seq 2 type h\n# c\nfile 'x\\'y' seq 3 type i\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ParseManifest(bytes.NewReader(data), "m")
		if err != nil {
			return
		}
		for i, fl := range files {
			if fl.Name == "" || strings.ContainsAny(fl.Name, "/\\") || fl.Name == ".." || (fl.Type != Base && fl.Type != Incr) || (fl.Type == Base && i != 0) {
				t.Fatalf("file %+v", fl)
			}
		}
	})
}

// FuzzReader: any bytes as a single AOF file give commands, then io.EOF or a
// *FormatError; never a panic, and never an argument bigger than the input.
func FuzzReader(f *testing.F) {
	f.Add([]byte(enc("SET", "a", "1") + enc("MULTI") + enc("INCR", "n") + enc("EXEC")))
	f.Add([]byte("#TS:1\r\n" + enc("DEL", "x")[:9]))
	f.Add([]byte("*2\r\n$3\r\nSET\r\n$99999999\r\nab"))
	f.Add([]byte("REDIS0011garbage"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "fuzz.aof")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(src, Options{MaxArg: 1 << 20, BufSize: 16})
		defer r.Close()
		if _, _, ok, err := r.RDB(); err != nil {
			t.Fatal(err)
		} else if ok {
			if err := r.SkipRDB(5); err != nil {
				t.Fatal(err)
			}
		}
		last := int64(-1)
		for {
			c, err := r.Next()
			if err == io.EOF {
				if tr := r.Truncated(); tr != nil && (tr.Offset < 0 || tr.Offset > int64(len(data))) {
					t.Fatalf("truncation %+v", tr)
				}
				return
			}
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) || fe.Offset < 0 || fe.Offset > int64(len(data)) {
					t.Fatalf("error %v", err)
				}
				return
			}
			if c.End <= last || c.End > int64(len(data)) || len(c.Args) == 0 {
				t.Fatalf("command %+v after %d", c, last)
			}
			last = c.End
		}
	})
}
