// Package crc64 is the CRC-64 that Redis puts at the end of an RDB file and
// of every DUMP payload (the "Jones" polynomial, reflected, no initial or
// final inversion: crc64(0, "123456789") = 0xe9c6d914c4b8d9ca).
//
// ferry checksums every byte twice on a full sync — the RDB stream it reads
// and each RESTORE payload it writes. With an eight-bytes-a-step table
// (slicing-by-8, as Redis's crcspeed and hdt3213/rdb do it) that was a
// quarter of its CPU there; sixteen bytes a step (updateTables) still left
// it at 15 %. On amd64 CPUs with a carry-less multiply (PCLMULQDQ) inputs
// of 64 bytes or more are folded 16 bytes per multiply instead, and only the
// last 16 bytes and a short tail go through the tables. The standard
// library's hash/crc64 cannot serve: it inverts the register, and for a
// polynomial other than ISO and ECMA it rebuilds its tables on every call of
// 2 KiB or more.
package crc64

import (
	"encoding/binary"
	"hash"
	"math/bits"
)

// poly is the Jones polynomial 0xad93d23594c935a9, bit-reversed.
const poly = 0x95ac9329ac4bc9b5

var tab = makeTables()

func makeTables() *[16][256]uint64 {
	t := new([16][256]uint64)
	for i := range 256 {
		c := uint64(i)
		for range 8 {
			if c&1 == 1 {
				c = c>>1 ^ poly
			} else {
				c >>= 1
			}
		}
		t[0][i] = c
	}
	for i := range 256 {
		c := t[0][i]
		for k := 1; k < 16; k++ {
			c = t[0][c&0xff] ^ c>>8
			t[k][i] = c
		}
	}
	return t
}

// foldMin is the least fold takes: one block per lane. From there on
// folding beats the tables (1.7x at 64 bytes, 6x at 64 KiB on the bench
// VM; BenchmarkUpdate against BenchmarkTables).
const foldMin = 64

// foldKeys are x^n mod P for the fold distances, in the reflected order the
// register holds: a 16-byte block's first eight bytes are its high-degree
// half. Folding block X forward by d bits is X.hi*x^(d+64) + X.lo*x^d mod P;
// a carry-less multiply of two reflected values yields the product divided
// by x, hence the exponents one lower. [0], [1] fold by 512 bits (four lanes
// of 16 bytes), [2], [3] by 128 bits.
var foldKeys = [4]uint64{xPowMod(512 + 63), xPowMod(512 - 1), xPowMod(128 + 63), xPowMod(128 - 1)}

// xPowMod returns x^n mod P, reflected.
func xPowMod(n int) uint64 {
	const normal = 0xad93d23594c935a9 // poly unreflected, x^64 implied
	r := uint64(1)
	for range n {
		carry := r >> 63
		r <<= 1
		if carry == 1 {
			r ^= normal
		}
	}
	return bits.Reverse64(r)
}

// Update returns the CRC after p, continuing from crc (0 to start).
func Update(crc uint64, p []byte) uint64 {
	if canFold && len(p) >= foldMin {
		n := len(p) &^ 15
		lo, hi := fold(crc, p[:n], &foldKeys)
		// What fold leaves is a 16-byte message whose CRC from zero is
		// the CRC of everything so far.
		var rem [16]byte
		binary.LittleEndian.PutUint64(rem[:8], lo)
		binary.LittleEndian.PutUint64(rem[8:], hi)
		crc = updateTables(0, rem[:])
		p = p[n:]
	}
	return updateTables(crc, p)
}

func updateTables(crc uint64, p []byte) uint64 {
	for len(p) >= 16 {
		a := crc ^ binary.LittleEndian.Uint64(p)
		b := binary.LittleEndian.Uint64(p[8:])
		crc = tab[15][a&0xff] ^ tab[14][a>>8&0xff] ^ tab[13][a>>16&0xff] ^ tab[12][a>>24&0xff] ^
			tab[11][a>>32&0xff] ^ tab[10][a>>40&0xff] ^ tab[9][a>>48&0xff] ^ tab[8][a>>56] ^
			tab[7][b&0xff] ^ tab[6][b>>8&0xff] ^ tab[5][b>>16&0xff] ^ tab[4][b>>24&0xff] ^
			tab[3][b>>32&0xff] ^ tab[2][b>>40&0xff] ^ tab[1][b>>48&0xff] ^ tab[0][b>>56]
		p = p[16:]
	}
	for _, b := range p {
		crc = tab[0][byte(crc)^b] ^ crc>>8
	}
	return crc
}

// Checksum returns the CRC of p.
func Checksum(p []byte) uint64 { return Update(0, p) }

// Digest is a hash.Hash64 over the bytes written to it.
type Digest struct{ crc uint64 }

// New returns a Digest at the start.
func New() *Digest { return &Digest{} }

func (d *Digest) Write(p []byte) (int, error) { d.crc = Update(d.crc, p); return len(p), nil }
func (d *Digest) Sum64() uint64               { return d.crc }
func (d *Digest) Reset()                      { d.crc = 0 }
func (d *Digest) Size() int                   { return 8 }
func (d *Digest) BlockSize() int              { return 8 }

// Sum appends the CRC in big-endian order, as hash.Hash requires (an RDB
// stores it little-endian: use Sum64).
func (d *Digest) Sum(b []byte) []byte { return binary.BigEndian.AppendUint64(b, d.crc) }

var _ hash.Hash64 = (*Digest)(nil)
