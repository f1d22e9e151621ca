package reader

import (
	"bytes"
	"math/bits"
)

// eofMark finds the 40-byte mark that ends a diskless snapshot. The mark is
// searched for in every piece of the snapshot (a source may send the first
// command right behind it), and bytes.Index stops at every byte equal to the
// mark's first one: in a snapshot full of hex digits, that was 5 % of
// ferry's CPU in a full sync. An occurrence of the mark covers exactly one
// offset that is a multiple of its length, so only the bytes at those offsets
// are looked up, in a table of where each byte value stands in the mark.
type eofMark struct {
	mark []byte
	at   [256]uint64 // bit i set: mark[i] is this byte
}

// newEOFMark takes a mark of at most 64 bytes (a source's is 40; the
// header is checked before).
func newEOFMark(mark []byte) *eofMark {
	m := &eofMark{mark: mark}
	for i, c := range mark {
		m.at[c] |= 1 << i
	}
	return m
}

// index returns the offset of the first mark in p, or -1.
func (m *eofMark) index(p []byte) int {
	n := len(m.mark)
	last := uint64(1) << (n - 1)
	for j := 0; j < len(p); j += n {
		// Candidates p[i:i+n] with p[j] = mark[j-i], leftmost first: the
		// highest bit is the smallest i. The byte after p[j] must be the
		// mark's next one too (a hex digit stands ~2.5 times in a hex
		// mark; a pair of them ~0.16 times), unless p[j] is the mark's last.
		set := m.at[p[j]]
		if j+1 < len(p) {
			set &= m.at[p[j+1]]>>1 | last
		}
		for set != 0 {
			k := bits.Len64(set) - 1
			set &^= 1 << k
			i := j - k
			if i >= 0 && i+n <= len(p) && p[i] == m.mark[0] && bytes.Equal(p[i:i+n], m.mark) {
				return i
			}
		}
	}
	return -1
}
