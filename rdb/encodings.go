package rdb

import (
	"encoding/binary"
	"strconv"
)

// elem is one element of a compact encoding: a string (s != nil or !isInt)
// or an integer.
type elem struct {
	s     []byte
	i     int64
	isInt bool
}

func (e elem) appendTo(dst []byte) []byte {
	if e.isInt {
		return strconv.AppendInt(dst, e.i, 10)
	}
	return append(dst, e.s...)
}

// int returns the element as an integer (strings are parsed).
func (e elem) int() (int64, bool) {
	if e.isInt {
		return e.i, true
	}
	v, err := strconv.ParseInt(string(e.s), 10, 64)
	return v, err == nil
}

// ---- listpack ----

type lpIter struct {
	b []byte
	p int
}

func newLP(b []byte) (lpIter, error) {
	if len(b) < 7 {
		return lpIter{}, corrupt("listpack too short (%d bytes)", len(b))
	}
	if tot := binary.LittleEndian.Uint32(b); uint64(tot) != uint64(len(b)) {
		return lpIter{}, corrupt("listpack header says %d bytes, blob has %d", tot, len(b))
	}
	if b[len(b)-1] != 0xff {
		return lpIter{}, corrupt("listpack without terminator")
	}
	return lpIter{b: b, p: 6}, nil
}

func lpBacklenSize(l uint64) int {
	switch {
	case l <= 127:
		return 1
	case l < 16383:
		return 2
	case l < 2097151:
		return 3
	case l < 268435455:
		return 4
	}
	return 5
}

// next returns the next element; ok is false at the end.
func (it *lpIter) next() (e elem, ok bool, err error) {
	b := it.b
	p := it.p
	if p >= len(b) {
		return e, false, corrupt("listpack overrun")
	}
	c := b[p]
	if c == 0xff {
		return e, false, nil
	}
	var hdr, dlen int // encoding header bytes, data bytes
	str := false
	switch {
	case c&0x80 == 0: // 7-bit uint
		e = elem{i: int64(c & 0x7f), isInt: true}
		hdr = 1
	case c&0xc0 == 0x80: // 6-bit str
		hdr, dlen, str = 1, int(c&0x3f), true
	case c&0xe0 == 0xc0: // 13-bit int
		if p+2 > len(b) {
			return e, false, corrupt("listpack entry overrun")
		}
		u := uint64(c&0x1f)<<8 | uint64(b[p+1])
		e = elem{i: signExtend(u, 13), isInt: true}
		hdr = 2
	case c&0xf0 == 0xe0: // 12-bit str
		if p+2 > len(b) {
			return e, false, corrupt("listpack entry overrun")
		}
		hdr, dlen, str = 2, int(c&0x0f)<<8|int(b[p+1]), true
	case c == 0xf0: // 32-bit str
		if p+5 > len(b) {
			return e, false, corrupt("listpack entry overrun")
		}
		l := binary.LittleEndian.Uint32(b[p+1:])
		if uint64(l) > uint64(len(b)) {
			return e, false, corrupt("listpack string length %d overruns blob", l)
		}
		hdr, dlen, str = 5, int(l), true
	case c >= 0xf1 && c <= 0xf4:
		n := [...]int{2, 3, 4, 8}[c-0xf1]
		if p+1+n > len(b) {
			return e, false, corrupt("listpack entry overrun")
		}
		var u uint64
		for i := n - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[p+1+i])
		}
		e = elem{i: signExtend(u, uint(n*8)), isInt: true}
		hdr = 1 + n
	default:
		return e, false, corrupt("bad listpack encoding byte 0x%02x", c)
	}
	encLen := hdr + dlen
	end := p + encLen + lpBacklenSize(uint64(encLen))
	if end > len(b)-1 || end < p {
		return e, false, corrupt("listpack entry overruns blob")
	}
	if str {
		e = elem{s: b[p+hdr : p+hdr+dlen]}
	}
	it.p = end
	return e, true, nil
}

func signExtend(u uint64, bits uint) int64 {
	if bits >= 64 {
		return int64(u)
	}
	shift := 64 - bits
	return int64(u<<shift) >> shift
}

// ---- ziplist ----

type zlIter struct {
	b []byte
	p int
}

func newZL(b []byte) (zlIter, error) {
	if len(b) < 11 {
		return zlIter{}, corrupt("ziplist too short (%d bytes)", len(b))
	}
	if tot := binary.LittleEndian.Uint32(b); uint64(tot) != uint64(len(b)) {
		return zlIter{}, corrupt("ziplist header says %d bytes, blob has %d", tot, len(b))
	}
	if b[len(b)-1] != 0xff {
		return zlIter{}, corrupt("ziplist without terminator")
	}
	return zlIter{b: b, p: 10}, nil
}

func (it *zlIter) next() (e elem, ok bool, err error) {
	b := it.b
	p := it.p
	if p >= len(b) {
		return e, false, corrupt("ziplist overrun")
	}
	if b[p] == 0xff {
		return e, false, nil
	}
	// previous entry length
	if b[p] == 0xfe {
		p += 5
	} else {
		p++
	}
	if p >= len(b)-1 {
		return e, false, corrupt("ziplist entry overrun")
	}
	c := b[p]
	need := func(n int) bool { return p+n <= len(b)-1 }
	switch c >> 6 {
	case 0:
		l := int(c & 0x3f)
		if !need(1 + l) {
			return e, false, corrupt("ziplist entry overrun")
		}
		e = elem{s: b[p+1 : p+1+l]}
		p += 1 + l
	case 1:
		if !need(2) {
			return e, false, corrupt("ziplist entry overrun")
		}
		l := int(c&0x3f)<<8 | int(b[p+1])
		if !need(2 + l) {
			return e, false, corrupt("ziplist entry overrun")
		}
		e = elem{s: b[p+2 : p+2+l]}
		p += 2 + l
	case 2:
		if !need(5) {
			return e, false, corrupt("ziplist entry overrun")
		}
		l := uint64(binary.BigEndian.Uint32(b[p+1:]))
		if l > uint64(len(b)) || !need(5+int(l)) {
			return e, false, corrupt("ziplist entry overrun")
		}
		e = elem{s: b[p+5 : p+5+int(l)]}
		p += 5 + int(l)
	default:
		var n int
		switch {
		case c == 0xc0:
			n = 2
		case c == 0xd0:
			n = 4
		case c == 0xe0:
			n = 8
		case c == 0xf0:
			n = 3
		case c == 0xfe:
			n = 1
		case c >= 0xf1 && c <= 0xfd:
			e = elem{i: int64(c&0x0f) - 1, isInt: true}
			it.p = p + 1
			return e, true, nil
		default:
			return e, false, corrupt("bad ziplist encoding byte 0x%02x", c)
		}
		if !need(1 + n) {
			return e, false, corrupt("ziplist entry overrun")
		}
		var u uint64
		for i := n - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[p+1+i])
		}
		e = elem{i: signExtend(u, uint(n*8)), isInt: true}
		p += 1 + n
	}
	it.p = p
	return e, true, nil
}

// ---- intset ----

type isIter struct {
	b     []byte
	width int
	i, n  int
}

func newIntset(b []byte) (isIter, error) {
	if len(b) < 8 {
		return isIter{}, corrupt("intset too short (%d bytes)", len(b))
	}
	w := binary.LittleEndian.Uint32(b)
	n := binary.LittleEndian.Uint32(b[4:])
	if w != 2 && w != 4 && w != 8 {
		return isIter{}, corrupt("bad intset encoding %d", w)
	}
	if uint64(len(b)) != 8+uint64(n)*uint64(w) {
		return isIter{}, corrupt("intset of %d x %d bytes in a %d-byte blob", n, w, len(b))
	}
	return isIter{b: b[8:], width: int(w), n: int(n)}, nil
}

func (it *isIter) next() (elem, bool) {
	if it.i >= it.n {
		return elem{}, false
	}
	p := it.b[it.i*it.width:]
	it.i++
	var v int64
	switch it.width {
	case 2:
		v = int64(int16(binary.LittleEndian.Uint16(p)))
	case 4:
		v = int64(int32(binary.LittleEndian.Uint32(p)))
	default:
		v = int64(binary.LittleEndian.Uint64(p))
	}
	return elem{i: v, isInt: true}, true
}

// ---- zipmap ----

type zmIter struct {
	b []byte
	p int
}

func newZipmap(b []byte) (zmIter, error) {
	if len(b) < 2 {
		return zmIter{}, corrupt("zipmap too short (%d bytes)", len(b))
	}
	return zmIter{b: b, p: 1}, nil
}

func (it *zmIter) readLen() (int, error) {
	b := it.b
	if it.p >= len(b) {
		return 0, corrupt("zipmap overrun")
	}
	c := b[it.p]
	if c < 254 {
		it.p++
		return int(c), nil
	}
	if c == 255 {
		return -1, nil
	}
	if it.p+5 > len(b) {
		return 0, corrupt("zipmap overrun")
	}
	l := binary.LittleEndian.Uint32(b[it.p+1:])
	it.p += 5
	if uint64(l) > uint64(len(b)) {
		return 0, corrupt("zipmap length %d overruns blob", l)
	}
	return int(l), nil
}

// next returns the next field and value.
func (it *zmIter) next() (f, v []byte, ok bool, err error) {
	fl, err := it.readLen()
	if err != nil || fl < 0 {
		return nil, nil, false, err
	}
	if it.p+fl > len(it.b) {
		return nil, nil, false, corrupt("zipmap overrun")
	}
	f = it.b[it.p : it.p+fl]
	it.p += fl
	vl, err := it.readLen()
	if err != nil {
		return nil, nil, false, err
	}
	if vl < 0 {
		return nil, nil, false, corrupt("zipmap field without value")
	}
	if it.p >= len(it.b) {
		return nil, nil, false, corrupt("zipmap overrun")
	}
	free := int(it.b[it.p])
	it.p++
	if it.p+vl+free > len(it.b) {
		return nil, nil, false, corrupt("zipmap overrun")
	}
	v = it.b[it.p : it.p+vl]
	it.p += vl + free
	return f, v, true, nil
}
