package rdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var (
	emptyZiplist = []byte{11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xff}
	emptyZipmap  = []byte{0, 0xff}
	emptyIntset  = []byte{2, 0, 0, 0, 0, 0, 0, 0}
)

// oneZiplist is a ziplist of one small string entry.
func oneZiplist(s string) []byte {
	e := []byte{0, byte(len(s))} // prevlen 0, 6-bit string length
	e = append(e, s...)
	b := binary.LittleEndian.AppendUint32(nil, uint32(10+len(e)+1))
	b = binary.LittleEndian.AppendUint32(b, 10)
	b = binary.LittleEndian.AppendUint16(b, 1)
	b = append(b, e...)
	return append(b, 0xff)
}

type emptyCase struct {
	key   string
	t     byte
	empty bool
	val   func(e *rdbBuf)
}

// emptyCases are values of every collection encoding Redis 7.0 loads
// (RDB 10), empty and not, each under its own key.
func emptyCases() []emptyCase {
	return []emptyCase{
		{"e:list", TypeList, true, func(e *rdbBuf) { e.len(0) }},
		{"e:set", TypeSet, true, func(e *rdbBuf) { e.len(0) }},
		{"e:zset", TypeZSet, true, func(e *rdbBuf) { e.len(0) }},
		{"e:zset2", TypeZSet2, true, func(e *rdbBuf) { e.len(0) }},
		{"e:hash", TypeHash, true, func(e *rdbBuf) { e.len(0) }},
		{"e:list-ziplist", TypeListZiplist, true, func(e *rdbBuf) { e.bstr(emptyZiplist) }},
		{"e:zset-ziplist", TypeZSetZiplist, true, func(e *rdbBuf) { e.bstr(emptyZiplist) }},
		{"e:hash-ziplist", TypeHashZiplist, true, func(e *rdbBuf) { e.bstr(emptyZiplist) }},
		{"e:quicklist-0", TypeListQuicklist, true, func(e *rdbBuf) { e.len(0) }},
		{"e:quicklist-nodes", TypeListQuicklist, true, func(e *rdbBuf) { e.len(2).bstr(emptyZiplist).lzfStr(emptyZiplist) }},
		{"e:hash-listpack", TypeHashListpack, true, func(e *rdbBuf) { e.bstr(buildLP()) }},
		{"e:zset-listpack", TypeZSetListpack, true, func(e *rdbBuf) { e.bstr(buildLP()) }},
		{"e:quicklist2-0", TypeListQuicklist2, true, func(e *rdbBuf) { e.len(0) }},
		{"e:quicklist2-nodes", TypeListQuicklist2, true, func(e *rdbBuf) { e.len(2).len(2).bstr(buildLP()).len(2).bstr(buildLP()) }},

		{"n:list", TypeList, false, func(e *rdbBuf) { e.len(1).str("a") }},
		{"n:set", TypeSet, false, func(e *rdbBuf) { e.len(1).str("a") }},
		{"n:hash", TypeHash, false, func(e *rdbBuf) { e.len(1).str("f").str("v") }},
		{"n:zset2", TypeZSet2, false, func(e *rdbBuf) { e.len(1).str("m").u64(0) }},
		{"n:quicklist", TypeListQuicklist, false, func(e *rdbBuf) { e.len(2).bstr(emptyZiplist).lzfStr(oneZiplist(strings.Repeat("z", 40))) }},
		{"n:quicklist2", TypeListQuicklist2, false, func(e *rdbBuf) { e.len(2).len(2).bstr(buildLP()).len(2).bstr(buildLP("x")) }},
		{"n:quicklist2-plain", TypeListQuicklist2, false, func(e *rdbBuf) { e.len(1).len(1).str("plain") }},
		{"n:list-ziplist", TypeListZiplist, false, func(e *rdbBuf) { e.bstr(oneZiplist("a")) }},
		{"n:hash-listpack", TypeHashListpack, false, func(e *rdbBuf) { e.lzfStr(buildLP(strings.Repeat("f", 30), strings.Repeat("v", 30))) }},
		{"n:intset", TypeSetIntset, false, func(e *rdbBuf) { e.bstr([]byte{2, 0, 0, 0, 1, 0, 0, 0, 7, 0}) }},
		{"n:string", TypeString, false, func(e *rdbBuf) { e.str("") }},
		{"n:stream", TypeStreamListpacks, false, func(e *rdbBuf) { e.len(0).len(0).len(0).len(0).len(0) }},
	}
}

// EmptyCollectionsRDB builds an RDB 10 stream with every case of
// emptyCases in db 0 and db 1.
func emptyCollectionsRDB(cases []emptyCase) []byte {
	e := newRDB(10)
	e.aux("redis-ver", "7.0.15")
	for _, db := range []int{0, 1} {
		e.selectDB(db)
		for _, c := range cases {
			e.key(c.t, c.key)
			c.val(e)
		}
	}
	return e.finish()
}

func TestRecordEmpty(t *testing.T) {
	cases := emptyCases()
	cases = append(cases,
		// Redis refuses these (integrity check), so they are not skipped.
		emptyCase{"e:intset", TypeSetIntset, false, func(e *rdbBuf) { e.bstr(emptyIntset) }},
		emptyCase{"e:zipmap", TypeHashZipmap, false, func(e *rdbBuf) { e.bstr(emptyZipmap) }},
		emptyCase{"e:set-listpack", TypeSetListpack, true, func(e *rdbBuf) { e.bstr(buildLP()) }},
		emptyCase{"n:set-listpack", TypeSetListpack, false, func(e *rdbBuf) { e.bstr(buildLP(1)) }},
		emptyCase{"e:hash-meta", TypeHashMetadata, true, func(e *rdbBuf) { e.u64(0).len(0) }},
		emptyCase{"e:hash-lpex", TypeHashListpackEx, true, func(e *rdbBuf) { e.u64(0).bstr(buildLP()) }},
	)
	e := newRDB(12)
	for _, c := range cases {
		e.key(c.t, c.key)
		c.val(e)
	}
	data := e.finish()
	for _, spill := range []bool{false, true} {
		opt := Options{}
		if spill {
			opt = Options{MemLimit: 1, SpillDir: t.TempDir()}
		}
		r := NewReader(bytes.NewReader(data), opt)
		for i := 0; ; i++ {
			rec, err := r.Next()
			if err == io.EOF {
				if i != len(cases) {
					t.Fatalf("%d records, want %d", i, len(cases))
				}
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.Empty(); got != cases[i].empty {
				t.Errorf("spill=%v %s: Empty() = %v, want %v", spill, rec.Key, got, cases[i].empty)
			}
			rec.Release()
		}
		r.Close()
	}
}

func TestLZFPrefix(t *testing.T) {
	plain := []byte(strings.Repeat("abcabcabc", 30) + "tail")
	e := newRDB(1).lzfStr(plain)
	comp := e.b[9:]
	s := newMemSrc(comp)
	for _, n := range []int{1, 7, 11, 100, 1000} {
		s.r = 0
		got, err := stringPrefix(s, n)
		if err != nil {
			t.Fatal(err)
		}
		want := plain[:min(n, len(plain))]
		if !bytes.Equal(got, want) {
			t.Errorf("prefix %d: %q, want %q", n, got, want)
		}
		if s.r != len(comp) {
			t.Errorf("prefix %d: consumed %d of %d bytes", n, s.r, len(comp))
		}
	}
}

// TestEmptyCollectionsLikeRedis: redis-server 7.0 loading the RDB keeps
// exactly the keys Empty calls non-empty. It also keeps the committed
// fixture testdata/empty-collections.rdb (used by the CLI tests) equal to
// what this test builds.
func TestEmptyCollectionsLikeRedis(t *testing.T) {
	cases := emptyCases()
	b := emptyCollectionsRDB(cases)
	fixture := filepath.Join("testdata", "empty-collections.rdb")
	if os.Getenv("FERRY_UPDATE_FIXTURES") != "" {
		if err := os.WriteFile(fixture, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if old, err := os.ReadFile(fixture); err != nil || !bytes.Equal(old, b) {
		t.Errorf("%s is not what this test builds (rerun with FERRY_UPDATE_FIXTURES=1): %v", fixture, err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "empty.rdb"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startRedis(t, "--dir", dir, "--dbfilename", "empty.rdb")
	var want []string
	for _, c := range cases {
		if !c.empty {
			want = append(want, c.key)
		}
	}
	slices.Sort(want)
	for _, db := range []int{0, 1} {
		c := srv.client(db)
		keys, err := c.Keys(context.Background(), "*").Result()
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if !slices.Equal(keys, want) {
			t.Errorf("db %d: redis-server loaded %q, want %q", db, keys, want)
		}
	}
	log, _ := os.ReadFile(filepath.Join(srv.dir, "redis.log"))
	if !strings.Contains(string(log), "skipping empty key") {
		t.Errorf("redis.log does not mention the skipped keys:\n%s", log)
	}
}

func BenchmarkRecordEmpty(b *testing.B) {
	e := newRDB(10)
	e.key(TypeHashListpack, "h").lzfStr(buildLP(strings.Repeat("f", 30), strings.Repeat("v", 30)))
	e.key(TypeString, "s").str("value")
	r := NewReader(bytes.NewReader(e.finish()), Options{})
	h, _ := r.Next()
	s, _ := r.Next()
	b.ReportAllocs()
	for b.Loop() {
		if h.Empty() || s.Empty() {
			b.Fatal("empty")
		}
	}
}
