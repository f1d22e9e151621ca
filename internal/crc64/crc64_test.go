package crc64

import (
	"math/rand/v2"
	"testing"

	"github.com/hdt3213/rdb/crc64jones"
)

// The check value of Redis's crc64 test ("e9c6d914c4b8d9ca").
func TestCheckValue(t *testing.T) {
	if got := Checksum([]byte("123456789")); got != 0xe9c6d914c4b8d9ca {
		t.Fatalf("crc64(123456789) = %016x, want e9c6d914c4b8d9ca", got)
	}
}

// Every length and alignment, in pieces, against hdt3213/rdb's
// implementation.
func TestMatchesBytewise(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 4096)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for n := 0; n < 300; n++ {
		for off := 0; off < 9; off++ {
			p := buf[off : off+n]
			ref := crc64jones.New()
			ref.Write(p)
			if got := Checksum(p); got != ref.Sum64() {
				t.Fatalf("len %d off %d: %016x, want %016x", n, off, got, ref.Sum64())
			}
			d := New()
			cut := n / 3
			d.Write(p[:cut])
			d.Write(p[cut:])
			if d.Sum64() != ref.Sum64() {
				t.Fatalf("len %d cut %d: pieces give %016x, want %016x", n, cut, d.Sum64(), ref.Sum64())
			}
		}
	}
}

// Long inputs at every alignment and every remainder of 16, and a running
// CRC carried in, fold (where the CPU can) and must agree with the tables.
func TestFoldMatchesTables(t *testing.T) {
	if !canFold {
		t.Skip("no carry-less multiply on this CPU: Update is the tables")
	}
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	lens := []int{foldMin - 1, foldMin, foldMin + 1, 143, 144, 191, 192, 193, 255, 256, 1000, 4096, 4097, 65536 + 15}
	for range 200 {
		lens = append(lens, foldMin+r.IntN(len(buf)-foldMin-16))
	}
	for _, n := range lens {
		for off := 0; off < 16; off += 5 {
			p := buf[off : off+n]
			seed := r.Uint64()
			if got, want := Update(seed, p), updateTables(seed, p); got != want {
				t.Fatalf("len %d off %d seed %016x: fold gives %016x, tables %016x", n, off, seed, got, want)
			}
		}
	}
}

func BenchmarkTables(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		updateTables(0, p)
	}
}

func BenchmarkUpdate(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Update(0, p)
	}
}

// A small value's payload: the length where folding starts to pay.
func BenchmarkUpdate200(b *testing.B) {
	p := make([]byte, 200)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		Update(0, p)
	}
}

func BenchmarkTables200(b *testing.B) {
	p := make([]byte, 200)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		updateTables(0, p)
	}
}

func BenchmarkBytewise(b *testing.B) {
	p := make([]byte, 64<<10)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		h := crc64jones.New()
		h.Write(p)
	}
}
