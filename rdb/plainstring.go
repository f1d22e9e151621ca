package rdb

import (
	"encoding/binary"
	"strconv"
)

// PlainString returns the value of a string key when its RDB encoding holds
// the bytes as they are or an integer (which is appended to buf in decimal):
// what a SET can carry with no decoding. ok is false for anything else —
// another type, an LZF-compressed string, a value spilled to disk, a length
// that does not match the value's bytes — which a RESTORE carries as it is.
// The slice may share the record's memory: it is valid while rec is.
func (rec *Record) PlainString(buf []byte) (v []byte, ok bool) {
	if rec.Kind != KindKey || rec.Type != TypeString || rec.Value == nil || rec.Value.file != nil {
		return nil, false
	}
	p := rec.Value.mem
	if len(p) == 0 {
		return nil, false
	}
	b := p[0]
	var n uint64
	var head int
	switch b >> 6 {
	case 0:
		n, head = uint64(b&0x3f), 1
	case 1:
		if len(p) < 2 {
			return nil, false
		}
		n, head = uint64(b&0x3f)<<8|uint64(p[1]), 2
	case 2:
		switch {
		case b == 0x80 && len(p) >= 5:
			n, head = uint64(binary.BigEndian.Uint32(p[1:])), 5
		case b == 0x81 && len(p) >= 9:
			n, head = binary.BigEndian.Uint64(p[1:]), 9
		default:
			return nil, false
		}
	case 3:
		var i int64
		switch {
		case b&0x3f == 0 && len(p) == 2:
			i = int64(int8(p[1]))
		case b&0x3f == 1 && len(p) == 3:
			i = int64(int16(binary.LittleEndian.Uint16(p[1:])))
		case b&0x3f == 2 && len(p) == 5:
			i = int64(int32(binary.LittleEndian.Uint32(p[1:])))
		default: // LZF, or an integer of the wrong length
			return nil, false
		}
		return strconv.AppendInt(buf[:0], i, 10), true
	}
	if n != uint64(len(p)-head) {
		return nil, false
	}
	return p[head:], true
}
