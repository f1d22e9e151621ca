package rdb

import (
	"encoding/binary"
	"hash"
	"io"
	"math"
	"strconv"

	"github.com/hdt3213/rdb/lzf"
)

// src is the buffered byte source shared by the framer (Reader) and the value
// decoder (Rewrite). It keeps its own buffer instead of bufio so that it can
// feed the CRC in large blocks and hand consumed bytes of a value to a
// capture sink right before they are discarded from the buffer.
type src struct {
	rd    io.Reader
	buf   []byte
	r, w  int
	base  int64 // stream offset of buf[0]
	rerr  error // sticky error of rd
	fixed bool  // buf holds all the data (in-memory value); never compact

	crc    hash.Hash64 // nil: no CRC
	crcPos int         // buf[:crcPos] has been fed to crc

	capOn bool     // capture consumed bytes into sink
	mark  int      // start of the not yet flushed captured bytes in buf
	sink  *Payload // capture destination
	sinkR *Reader  // owner for spill settings
}

const (
	// limits of decoded strings; longer ones are corrupt input.
	maxKeyLen    = 512 << 20
	maxStringLen = 1 << 40
	// LZF expands at most ~88x (a 3-byte back reference yields 264 bytes).
	lzfMaxRatio = 96
)

func newMemSrc(b []byte) *src {
	return &src{buf: b, w: len(b), fixed: true}
}

func (s *src) offset() int64 { return s.base + int64(s.r) }

func (s *src) short() error {
	if s.rerr == nil || s.rerr == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return s.rerr
}

// compact discards consumed bytes from the buffer, after handing them to the
// CRC and the capture sink.
func (s *src) compact() error {
	if s.r == 0 {
		return nil
	}
	if s.capOn && s.r > s.mark {
		if err := s.sinkR.spillWrite(s.sink, s.buf[s.mark:s.r]); err != nil {
			return err
		}
	}
	s.mark = 0
	if s.crc != nil && s.r > s.crcPos {
		s.crc.Write(s.buf[s.crcPos:s.r])
	}
	s.crcPos = 0
	n := copy(s.buf, s.buf[s.r:s.w])
	s.base += int64(s.r)
	s.r, s.w = 0, n
	return nil
}

// fill makes at least n (<= len(buf)) bytes available at buf[r:].
func (s *src) fill(n int) error {
	if s.w-s.r >= n {
		return nil
	}
	if s.fixed {
		return io.ErrUnexpectedEOF
	}
	zero := 0
	for s.w-s.r < n {
		if s.rerr != nil {
			return s.short()
		}
		if len(s.buf)-s.r < n || s.w == len(s.buf) {
			if err := s.compact(); err != nil {
				return err
			}
		}
		m, err := s.rd.Read(s.buf[s.w:])
		if m < 0 || m > len(s.buf)-s.w {
			s.rerr = io.ErrNoProgress
			continue
		}
		s.w += m
		if err != nil {
			s.rerr = err
		} else if m == 0 {
			if zero++; zero > 100 {
				s.rerr = io.ErrNoProgress
			}
		}
	}
	return nil
}

func (s *src) readByte() (byte, error) {
	if s.r < s.w {
		b := s.buf[s.r]
		s.r++
		return b, nil
	}
	if err := s.fill(1); err != nil {
		return 0, err
	}
	b := s.buf[s.r]
	s.r++
	return b, nil
}

// next returns the next n (<= maxPeek) bytes; valid until the next call.
func (s *src) next(n int) ([]byte, error) {
	if s.w-s.r < n {
		if err := s.fill(n); err != nil {
			return nil, err
		}
	}
	b := s.buf[s.r : s.r+n]
	s.r += n
	return b, nil
}

func (s *src) readU32() (uint32, error) {
	b, err := s.next(4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (s *src) readU64() (uint64, error) {
	b, err := s.next(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// skip consumes n bytes.
func (s *src) skip(n uint64) error {
	for {
		avail := uint64(s.w - s.r)
		if avail >= n {
			s.r += int(n)
			return nil
		}
		n -= avail
		s.r = s.w
		if err := s.fill(1); err != nil {
			return err
		}
	}
}

// readLen reads an RDB length. enc reports the special-encoding form (11xxxxxx),
// in which case the value is the encoding type.
func (s *src) readLen() (v uint64, enc bool, err error) {
	var b byte
	if s.r < s.w {
		b = s.buf[s.r]
		s.r++
	} else if b, err = s.readByte(); err != nil {
		return 0, false, err
	}
	switch b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		b2, err := s.readByte()
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3f)<<8 | uint64(b2), false, nil
	case 3:
		return uint64(b & 0x3f), true, nil
	}
	switch b {
	case 0x80:
		p, err := s.next(4)
		if err != nil {
			return 0, false, err
		}
		return uint64(binary.BigEndian.Uint32(p)), false, nil
	case 0x81:
		p, err := s.next(8)
		if err != nil {
			return 0, false, err
		}
		return binary.BigEndian.Uint64(p), false, nil
	}
	return 0, false, corrupt("unknown length encoding 0x%02x", b)
}

// readCount reads a plain length (not a string encoding).
func (s *src) readCount() (uint64, error) {
	v, enc, err := s.readLen()
	if err != nil {
		return 0, err
	}
	if enc {
		return 0, corrupt("unexpected string encoding %d where a length was expected", v)
	}
	return v, nil
}

// skipString consumes an RDB string without decoding it.
func (s *src) skipString() error {
	v, enc, err := s.readLen()
	if err != nil {
		return err
	}
	if !enc {
		return s.skip(v)
	}
	switch v {
	case 0:
		return s.skip(1)
	case 1:
		return s.skip(2)
	case 2:
		return s.skip(4)
	case 3:
		clen, err := s.readCount()
		if err != nil {
			return err
		}
		if _, err := s.readCount(); err != nil {
			return err
		}
		return s.skip(clen)
	}
	return corrupt("unknown string encoding %d", v)
}

// appendN appends the next n bytes of the stream to dst, growing dst only as
// data actually arrives (so a lying length cannot make it allocate).
func (s *src) appendN(dst []byte, n uint64) ([]byte, error) {
	for n > 0 {
		if s.r == s.w {
			if err := s.fill(1); err != nil {
				return dst, err
			}
		}
		avail := uint64(s.w - s.r)
		if avail > n {
			avail = n
		}
		dst = append(dst, s.buf[s.r:s.r+int(avail)]...)
		s.r += int(avail)
		n -= avail
	}
	return dst, nil
}

// readString decodes an RDB string (raw, integer or LZF) and appends it to
// dst. Strings longer than max are reported as corrupt.
func (s *src) readString(dst []byte, max uint64) ([]byte, error) {
	v, enc, err := s.readLen()
	if err != nil {
		return dst, err
	}
	if !enc {
		if v > max {
			return dst, corrupt("string length %d exceeds limit %d", v, max)
		}
		return s.appendN(dst, v)
	}
	return s.readEncoded(dst, v, max)
}

// readStringView is readString that, on an in-memory source, returns raw
// strings as a view of the source instead of copying them into scratch.
func (s *src) readStringView(scratch []byte, max uint64) (view, newScratch []byte, err error) {
	v, enc, err := s.readLen()
	if err != nil {
		return nil, scratch, err
	}
	if !enc {
		if v > max {
			return nil, scratch, corrupt("string length %d exceeds limit %d", v, max)
		}
		if s.fixed {
			if v > uint64(s.w-s.r) {
				return nil, scratch, io.ErrUnexpectedEOF
			}
			b := s.buf[s.r : s.r+int(v)]
			s.r += int(v)
			return b, scratch, nil
		}
		scratch, err = s.appendN(scratch[:0], v)
		return scratch, scratch, err
	}
	scratch, err = s.readEncoded(scratch[:0], v, max)
	return scratch, scratch, err
}

func (s *src) readEncoded(dst []byte, enc uint64, max uint64) ([]byte, error) {
	switch enc {
	case 0, 1, 2:
		n := 1 << enc
		p, err := s.next(n)
		if err != nil {
			return dst, err
		}
		var x int64
		switch enc {
		case 0:
			x = int64(int8(p[0]))
		case 1:
			x = int64(int16(binary.LittleEndian.Uint16(p)))
		default:
			x = int64(int32(binary.LittleEndian.Uint32(p)))
		}
		return strconv.AppendInt(dst, x, 10), nil
	case 3:
		clen, err := s.readCount()
		if err != nil {
			return dst, err
		}
		ulen, err := s.readCount()
		if err != nil {
			return dst, err
		}
		if ulen > max {
			return dst, corrupt("string length %d exceeds limit %d", ulen, max)
		}
		if clen > ulen+64 || clen > math.MaxInt32 || ulen > math.MaxInt32 {
			return dst, corrupt("bad LZF lengths (compressed %d, plain %d)", clen, ulen)
		}
		if ulen > clen*lzfMaxRatio+64 {
			return dst, corrupt("bad LZF lengths (compressed %d, plain %d)", clen, ulen)
		}
		comp, err := s.appendN(make([]byte, 0, min(clen, 64<<10)), clen)
		if err != nil {
			return dst, err
		}
		if ulen == 0 {
			if clen != 0 {
				return dst, corrupt("invalid LZF data")
			}
			return dst, nil
		}
		out, err := lzf.Decompress(comp, len(comp), int(ulen))
		if err != nil || uint64(len(out)) != ulen {
			return dst, corrupt("invalid LZF data")
		}
		if len(dst) == 0 {
			return out, nil
		}
		return append(dst, out...), nil
	}
	return dst, corrupt("unknown string encoding %d", enc)
}
