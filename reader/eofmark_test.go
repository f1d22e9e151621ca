package reader

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The mark at every offset of a piece, next to near misses and repeats,
// must be found where bytes.Index finds it.
func TestEOFMarkMatchesIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	hex := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "0123456789abcdef"[r.IntN(16)]
		}
		return b
	}
	for round := range 300 {
		mark := hex(40)
		if round%3 == 0 {
			mark = bytes.Repeat([]byte("a"), 40) // every offset a candidate
		}
		m := newEOFMark(mark)
		p := hex(r.IntN(600))
		cases := [][]byte{p, mark, mark[:39], append([]byte(nil), p...)}
		at := r.IntN(len(p) + 1)
		with := append(append(append([]byte(nil), p[:at]...), mark...), p[at:]...)
		twice := append(append([]byte(nil), with...), mark...)
		near := append([]byte(nil), with...)
		near[at+r.IntN(40)] ^= 1
		cases = append(cases, with, twice, near)
		for i, c := range cases {
			if got, want := m.index(c), bytes.Index(c, mark); got != want {
				t.Fatalf("round %d case %d (len %d, mark at %d): index %d, want %d", round, i, len(c), at, got, want)
			}
		}
	}
}

// A snapshot-like piece of hex-digit keys and values, the mark nowhere: the
// search as ferry did it (bytes.Index) against eofMark, in one run.
func BenchmarkEOFMark(b *testing.B) {
	var p []byte
	for i := 0; len(p) < 256<<10; i++ {
		p = fmt.Appendf(p, "\x00\x0ckey:%08x\x20%x%x", i, i*7919, i*104729)
	}
	mark := []byte("3a9f0c6d2e8b4f17a05c9d3e6b2f8a41c7d0e593")
	b.Run("bytes.Index", func(b *testing.B) {
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			// The search itself is what is measured, so not bytes.Contains.
			if i := bytes.Index(p, mark); i >= 0 {
				b.Fatal("found")
			}
		}
	})
	b.Run("eofMark", func(b *testing.B) {
		m := newEOFMark(mark)
		b.SetBytes(int64(len(p)))
		for b.Loop() {
			if m.index(p) >= 0 {
				b.Fatal("found")
			}
		}
	})
}
