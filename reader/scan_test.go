package reader

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/ferry-dev/ferry/internal/redistest"
	"github.com/ferry-dev/ferry/rdb"
	"github.com/ferry-dev/ferry/resp"
)

func TestMissingClasses(t *testing.T) {
	for _, c := range []struct {
		flags, missing string
		published      bool
	}{
		{"", "g$lshzxet", false},
		{"KEA", "", true},
		{"EA", "", true},
		{"Kg$lshzxet", "", true},
		{"Ex", "g$lshzet", true},
		{"A", "", false},
	} {
		m, p := missingClasses(c.flags)
		if m != c.missing || p != c.published {
			t.Errorf("missingClasses(%q) = %q, %v; want %q, %v", c.flags, m, p, c.missing, c.published)
		}
	}
}

func TestNotificationParsing(t *testing.T) {
	s := &subscriber{dirty: newDirtySet(), pending: map[string]*barrier{}}
	s.notification([]byte("__keyevent@3__:set"), []byte("a:b__:c"))
	s.notification([]byte("__keyspace@12__:x y"), []byte("del"))
	s.notification([]byte("__keyspace@0__:__ferry:probe:k"), []byte("set"))
	s.notification([]byte("__keyevent@0__:keymiss"), []byte("missed"))
	s.notification([]byte("__keyevent@x__:set"), []byte("bad"))
	keys, rescan, _ := s.dirty.take()
	got := map[dirtyKey]bool{}
	for _, k := range keys {
		got[k] = true
	}
	want := map[dirtyKey]bool{{3, "a:b__:c"}: true, {12, "x y"}: true}
	if len(got) != len(want) || !got[dirtyKey{3, "a:b__:c"}] || !got[dirtyKey{12, "x y"}] || rescan != "" {
		t.Fatalf("dirty = %v (rescan %q), want %v", got, rescan, want)
	}
}

// TestSnapshotFromDumps: the RDB the scan reader builds from DUMP payloads
// of every type and encoding is read back by the RDB reader key for key.
func TestSnapshotFromDumps(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client(t)
	ctx := context.Background()
	st := redistest.FillAllTypes(t, c, redistest.FillOptions{Keys: 200, DBs: []int{0}, Big: true, TTLPct: 30, Seed: 4})
	redistest.LoadFunctionLibrary(t, c)
	var spool bytes.Buffer
	f := &frameOut{out: &spool}
	b := newRDBBuilder(f)
	fn, err := c.FunctionDump(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.functions([]byte(fn)); err != nil {
		t.Fatal(err)
	}
	keys, err := c.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		d, err := c.Dump(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := b.key(0, []byte(k), 0, []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.end(); err != nil {
		t.Fatal(err)
	}
	frames := NewFrames(&spool, nil, nil)
	rr := rdb.NewReader(frames.RDB(), rdb.Options{SpillDir: t.TempDir()})
	defer rr.Close()
	n, funcs := 0, 0
	for {
		rec, err := rr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch rec.Kind {
		case rdb.KindKey:
			n++
		case rdb.KindFunction:
			funcs++
		}
		rec.Release()
	}
	if n != len(keys) || n != st.Keys || funcs == 0 {
		t.Fatalf("read %d keys and %d function libraries back, want %d keys and a library", n, funcs, len(keys))
	}
}

// TestSnapshotKeeps: the big keys a snapshot names (rdb.AuxKeep, after its
// keys) are read back in their dbs; a snapshot of nothing but big keys is
// a valid RDB too.
func TestSnapshotKeeps(t *testing.T) {
	// The DUMP payload of the string "v" (RDB 10; the CRC is not checked).
	payload := append([]byte{0, 1, 'v', 10, 0}, make([]byte, 8)...)
	for _, withKey := range []bool{true, false} {
		var spool bytes.Buffer
		b := newRDBBuilder(&frameOut{out: &spool})
		if withKey {
			if err := b.key(2, []byte("small"), 0, payload); err != nil {
				t.Fatal(err)
			}
		}
		for _, k := range []dirtyKey{{0, "big:a"}, {2, "big:b"}, {2, "big:c"}} {
			if err := b.keep(k.db, []byte(k.key)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.end(); err != nil {
			t.Fatal(err)
		}
		rr := rdb.NewReader(NewFrames(&spool, nil, nil).RDB(), rdb.Options{SpillDir: t.TempDir()})
		var got []dirtyKey
		keys := 0
		for {
			rec, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if k, ok := rec.Keep(); ok {
				got = append(got, dirtyKey{rec.DB, string(k)})
			}
			if rec.Kind == rdb.KindKey {
				keys++
			}
			rec.Release()
		}
		rr.Close()
		want := []dirtyKey{{0, "big:a"}, {2, "big:b"}, {2, "big:c"}}
		if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] || (keys == 1) != withKey {
			t.Errorf("with a key %v: read keeps %v and %d keys back, want %v", withKey, got, keys, want)
		}
	}
}

// TestBigValueTx: the DEL that starts a big value is in one MULTI with the
// first command after it, even when a piece adds nothing.
func TestBigValueTx(t *testing.T) {
	var spool bytes.Buffer
	o := &cmdOut{s: &Scan{fo: frameOut{out: &spool}}}
	if err := o.begin([]byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := o.piece(); err != nil { // an empty piece
		t.Fatal(err)
	}
	if err := o.add([]byte("HSET"), []byte("k"), []byte("f"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := o.add([]byte("HSET"), []byte("k"), []byte("g"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	o.end()
	var want []byte
	for _, c := range [][]string{{"MULTI"}, {"DEL", "k"}, {"HSET", "k", "f", "v"}, {"EXEC"}, {"HSET", "k", "g", "v"}} {
		want = resp.AppendCommandStrings(want, c...)
	}
	if string(o.buf) != string(want) {
		t.Fatalf("wrote %q, want %q", o.buf, want)
	}
}
