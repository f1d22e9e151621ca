package rdb

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/rand"
	"sync"
	"testing"
)

var (
	benchOnce sync.Once
	benchData []byte
)

// benchRDB generates a ~60 MB RDB shaped like a real snapshot: many small
// strings, listpack hashes, hashtable hashes, skiplist zsets, quicklists and
// a few big strings.
func benchRDB() []byte {
	benchOnce.Do(func() {
		rnd := rand.New(rand.NewSource(7))
		val := func(n int) []byte {
			b := make([]byte, n)
			for i := range b {
				b[i] = 'a' + byte(rnd.Intn(26))
			}
			return b
		}
		e := newRDB(10)
		e.aux("redis-ver", "7.0.15").selectDB(0).byte(opResizeDB).len(300000).len(0)
		for i := 0; i < 200000; i++ {
			if i%10 == 0 {
				e.byte(opExpireTimeMs).u64(4102444800000)
			}
			e.key(TypeString, fmt.Sprintf("user:%d:session", i)).bstr(val(40 + i%30))
		}
		for i := 0; i < 20000; i++ {
			var els []any
			for j := 0; j < 8; j++ {
				els = append(els, fmt.Sprintf("field%d", j), val(10+j))
			}
			e.key(TypeHashListpack, fmt.Sprintf("profile:%d", i)).bstr(buildLP(els...))
		}
		for i := 0; i < 2000; i++ {
			e.key(TypeHash, fmt.Sprintf("bighash:%d", i)).len(100)
			for j := 0; j < 100; j++ {
				e.str(fmt.Sprintf("f:%d", j)).bstr(val(20))
			}
		}
		for i := 0; i < 2000; i++ {
			e.key(TypeZSet2, fmt.Sprintf("rank:%d", i)).len(100)
			for j := 0; j < 100; j++ {
				e.str(fmt.Sprintf("member:%d", j)).u64(math.Float64bits(float64(j) * 1.5))
			}
		}
		for i := 0; i < 1000; i++ {
			e.key(TypeListQuicklist2, fmt.Sprintf("queue:%d", i)).len(2)
			for n := 0; n < 2; n++ {
				var els []any
				for j := 0; j < 200; j++ {
					els = append(els, val(35))
				}
				e.len(2).bstr(buildLP(els...))
			}
		}
		for i := 0; i < 100; i++ {
			e.key(TypeString, fmt.Sprintf("blob:%d", i)).bstr(val(100 << 10))
		}
		benchData = e.finish()
	})
	return benchData
}

func benchFrame(b *testing.B, each func(rec *Record)) { benchFrameData(b, benchRDB(), each) }

func benchFrameData(b *testing.B, data []byte, each func(rec *Record)) {
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(data), Options{})
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if each != nil {
				each(rec)
			}
			rec.Release()
		}
		r.Close()
	}
}

// BenchmarkFrame: framing alone (records, raw value capture, stream CRC).
func BenchmarkFrame(b *testing.B) { benchFrame(b, nil) }

// BenchmarkFrameRestorePayload: framing plus building every RESTORE payload
// (which CRCs each value once more).
func BenchmarkFrameRestorePayload(b *testing.B) {
	var buf []byte
	benchFrame(b, func(rec *Record) {
		if rec.Kind == KindKey {
			var err error
			if buf, err = rec.AppendRestorePayload(buf[:0], 10); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFrameRewrite: framing plus rewriting every key into commands.
func BenchmarkFrameRewrite(b *testing.B) {
	emit := func([][]byte) error { return nil }
	benchFrame(b, func(rec *Record) {
		if err := Rewrite(rec, RewriteOptions{}, emit); err != nil {
			b.Fatal(err)
		}
	})
}

// BenchmarkFrameSpilled: every value above 4 KiB goes through a temp file.
func BenchmarkFrameSpilled(b *testing.B) {
	data := benchRDB()
	dir := b.TempDir()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := NewReader(bytes.NewReader(data), Options{MemLimit: 4 << 10, SpillDir: dir})
		for {
			rec, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			rec.Release()
		}
		r.Close()
	}
}

var (
	bigOnce sync.Once
	bigData []byte
)

// BenchmarkFrameBigValues: framing an RDB of a few values of 8 to 24 MB (a
// string and quicklists of 8 KB nodes), each captured whole in memory (in
// chunks); how a capture grows is what it measures. BenchmarkFrame is its
// anchor.
func BenchmarkFrameBigValues(b *testing.B) {
	bigOnce.Do(func() {
		rnd := rand.New(rand.NewSource(9))
		node := func() []byte {
			var els []any
			for j := 0; j < 200; j++ {
				b := make([]byte, 40)
				for i := range b {
					b[i] = 'a' + byte(rnd.Intn(26))
				}
				els = append(els, b)
			}
			return buildLP(els...)
		}
		e := newRDB(10)
		e.aux("redis-ver", "7.0.15").selectDB(0)
		for i, mb := range []int{8, 16, 24} {
			nodes := mb << 20 / len(node())
			e.key(TypeListQuicklist2, fmt.Sprintf("list:%d", i)).len(uint64(nodes))
			for n := 0; n < nodes; n++ {
				e.len(2).bstr(node())
			}
		}
		e.key(TypeString, "blob").bstr(bytes.Repeat([]byte("x"), 20<<20))
		bigData = e.finish()
	})
	benchFrameData(b, bigData, nil)
}
