package rdb

// PlainString returns the value of a string key when its RDB encoding holds
// the bytes as they are or an integer (which is appended to buf in decimal):
// what a SET can carry with no decoding. ok is false for anything else —
// another type, an LZF-compressed string, a value spilled to disk or held in
// chunks (over 1 MiB: it is not in one slice), a length that does not match
// the value's bytes — which a RESTORE carries as it is.
// The slice may share the record's memory: it is valid while rec is.
func (rec *Record) PlainString(buf []byte) (v []byte, ok bool) {
	if rec.Kind != KindKey || rec.Type != TypeString || rec.Value == nil {
		return nil, false
	}
	mem, ok := rec.Value.flat()
	if !ok {
		return nil, false
	}
	s := src{buf: mem, w: len(mem), fixed: true}
	n, enc, err := s.readLen()
	switch {
	case err != nil:
		return nil, false
	case enc && n <= 2: // an 8, 16 or 32-bit integer
		v, err = s.readEncoded(buf[:0], n, 0)
		return v, err == nil && s.r == s.w
	case enc: // LZF
		return nil, false
	case n != uint64(s.w-s.r):
		return nil, false
	}
	return s.buf[s.r:], true
}
