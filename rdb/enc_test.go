package rdb

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/hdt3213/rdb/crc64jones"
	"github.com/hdt3213/rdb/lzf"
)

// rdbBuf builds RDB streams and values by hand for tests.
type rdbBuf struct{ b []byte }

func newRDB(version int) *rdbBuf {
	return &rdbBuf{b: []byte(fmt.Sprintf("REDIS%04d", version))}
}

func (e *rdbBuf) byte(c byte) *rdbBuf { e.b = append(e.b, c); return e }

func (e *rdbBuf) raw(p []byte) *rdbBuf { e.b = append(e.b, p...); return e }

func (e *rdbBuf) len(n uint64) *rdbBuf {
	switch {
	case n < 1<<6:
		e.b = append(e.b, byte(n))
	case n < 1<<14:
		e.b = append(e.b, byte(n>>8)|0x40, byte(n))
	case n <= math.MaxUint32:
		e.b = append(e.b, 0x80)
		e.b = binary.BigEndian.AppendUint32(e.b, uint32(n))
	default:
		e.b = append(e.b, 0x81)
		e.b = binary.BigEndian.AppendUint64(e.b, n)
	}
	return e
}

func (e *rdbBuf) str(s string) *rdbBuf { return e.bstr([]byte(s)) }

func (e *rdbBuf) bstr(s []byte) *rdbBuf {
	e.len(uint64(len(s)))
	e.b = append(e.b, s...)
	return e
}

// intStr writes an integer-encoded string (INT8/16/32).
func (e *rdbBuf) intStr(v int64) *rdbBuf {
	switch {
	case v >= math.MinInt8 && v <= math.MaxInt8:
		e.b = append(e.b, 0xc0, byte(v))
	case v >= math.MinInt16 && v <= math.MaxInt16:
		e.b = append(e.b, 0xc1)
		e.b = binary.LittleEndian.AppendUint16(e.b, uint16(v))
	default:
		e.b = append(e.b, 0xc2)
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(v))
	}
	return e
}

func (e *rdbBuf) lzfStr(s []byte) *rdbBuf {
	c, err := lzf.Compress(s)
	if err != nil || len(c) == 0 {
		return e.bstr(s)
	}
	e.b = append(e.b, 0xc3)
	e.len(uint64(len(c))).len(uint64(len(s)))
	e.b = append(e.b, c...)
	return e
}

func (e *rdbBuf) u64(v uint64) *rdbBuf { e.b = binary.LittleEndian.AppendUint64(e.b, v); return e }

func (e *rdbBuf) aux(k, v string) *rdbBuf { return e.byte(opAux).str(k).str(v) }

func (e *rdbBuf) selectDB(db int) *rdbBuf { return e.byte(opSelectDB).len(uint64(db)) }

func (e *rdbBuf) key(t byte, k string) *rdbBuf { return e.byte(t).str(k) }

// finish appends EOF and the CRC64.
func (e *rdbBuf) finish() []byte {
	e.b = append(e.b, opEOF)
	h := crc64jones.New()
	h.Write(e.b)
	return binary.LittleEndian.AppendUint64(e.b, h.Sum64())
}

// listpack builder: elements are string, []byte or int / int64.
func buildLP(elems ...any) []byte {
	var body []byte
	for _, el := range elems {
		var enc []byte
		switch v := el.(type) {
		case string:
			enc = lpEncStr([]byte(v))
		case []byte:
			enc = lpEncStr(v)
		case int:
			enc = lpEncInt(int64(v))
		case int64:
			enc = lpEncInt(v)
		case uint64:
			enc = lpEncInt(int64(v))
		default:
			panic(fmt.Sprintf("buildLP: %T", el))
		}
		body = append(body, enc...)
		body = append(body, lpBacklen(uint64(len(enc)))...)
	}
	out := make([]byte, 6, 6+len(body)+1)
	out = append(out, body...)
	out = append(out, 0xff)
	binary.LittleEndian.PutUint32(out, uint32(len(out)))
	n := len(elems)
	if n > 65535 {
		n = 65535
	}
	binary.LittleEndian.PutUint16(out[4:], uint16(n))
	return out
}

func lpEncStr(s []byte) []byte {
	switch l := len(s); {
	case l < 64:
		return append([]byte{0x80 | byte(l)}, s...)
	case l < 4096:
		return append([]byte{0xe0 | byte(l>>8), byte(l)}, s...)
	default:
		b := []byte{0xf0, 0, 0, 0, 0}
		binary.LittleEndian.PutUint32(b[1:], uint32(l))
		return append(b, s...)
	}
}

func lpEncInt(v int64) []byte {
	switch {
	case v >= 0 && v <= 127:
		return []byte{byte(v)}
	case v >= -4096 && v <= 4095:
		u := uint64(v) & 0x1fff
		return []byte{0xc0 | byte(u>>8), byte(u)}
	case v >= math.MinInt16 && v <= math.MaxInt16:
		return []byte{0xf1, byte(v), byte(v >> 8)}
	case v >= -(1<<23) && v < 1<<23:
		return []byte{0xf2, byte(v), byte(v >> 8), byte(v >> 16)}
	case v >= math.MinInt32 && v <= math.MaxInt32:
		return []byte{0xf3, byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
	default:
		b := []byte{0xf4}
		return binary.LittleEndian.AppendUint64(b, uint64(v))
	}
}

func lpBacklen(l uint64) []byte {
	switch {
	case l <= 127:
		return []byte{byte(l)}
	case l < 16383:
		return []byte{byte(l >> 7), byte(l&127) | 128}
	case l < 2097151:
		return []byte{byte(l >> 14), byte((l>>7)&127) | 128, byte(l&127) | 128}
	case l < 268435455:
		return []byte{byte(l >> 21), byte((l>>14)&127) | 128, byte((l>>7)&127) | 128, byte(l&127) | 128}
	default:
		return []byte{byte(l >> 28), byte((l>>21)&127) | 128, byte((l>>14)&127) | 128, byte((l>>7)&127) | 128, byte(l&127) | 128}
	}
}

// streamNodeKey is the 16-byte big-endian rax key of a stream listpack.
func streamNodeKey(ms, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(nil, ms)
	return binary.BigEndian.AppendUint64(b, seq)
}
