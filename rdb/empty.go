package rdb

// Empty reports whether a key record holds a collection without elements:
// a list, set, sorted set or hash whose element count is zero, or whose
// compact encoding (listpack, ziplist, or every node of a quicklist) holds
// nothing. Redis skips such keys when it loads an RDB
// ("rdbLoadObject skipping empty key") and refuses them in RESTORE ("Bad
// data format"), so an import must skip them too. Strings, streams (an
// empty stream is a valid value) and module values are never empty.
//
// Only the first bytes of the value are read (a quicklist: up to its first
// non-empty node). A value too damaged to tell is reported as not empty: its
// RESTORE or rewrite then reports the damage.
func (rec *Record) Empty() bool {
	if rec == nil || rec.Kind != KindKey || rec.Value == nil {
		return false
	}
	switch TypeName(rec.Type) {
	case "list", "set", "zset", "hash":
	default:
		return false
	}
	p := rec.Value
	var s *src
	if mem, ok := p.flat(); ok {
		ms := src{buf: mem, w: len(mem), fixed: true}
		s = &ms
	} else {
		s = &src{rd: p.Open(), buf: make([]byte, 4<<10)}
	}
	empty, err := emptyValue(s, rec.Type)
	return err == nil && empty
}

// emptyPrefix is how much of a compact encoding decides its emptiness: the
// ziplist header (10 bytes) and its first entry byte.
const emptyPrefix = 11

func emptyValue(s *src, t byte) (bool, error) {
	switch t {
	case TypeList, TypeSet, TypeZSet, TypeZSet2, TypeHash, TypeHashMetadataPreGA:
		n, err := s.readCount()
		return n == 0, err
	case TypeHashMetadata:
		if err := s.skip(8); err != nil { // minimum expire time
			return false, err
		}
		n, err := s.readCount()
		return n == 0, err
	case TypeListZiplist, TypeZSetZiplist, TypeHashZiplist:
		b, err := stringPrefix(s, emptyPrefix)
		return err == nil && ziplistEmpty(b), err
	case TypeHashListpack, TypeZSetListpack, TypeSetListpack, TypeHashListpackExPreGA:
		b, err := stringPrefix(s, emptyPrefix)
		return err == nil && listpackEmpty(b), err
	case TypeHashListpackEx:
		if err := s.skip(8); err != nil {
			return false, err
		}
		b, err := stringPrefix(s, emptyPrefix)
		return err == nil && listpackEmpty(b), err
	case TypeListQuicklist, TypeListQuicklist2:
		// Redis drops empty nodes and then the key if no node is left.
		n, err := s.readCount()
		if err != nil {
			return false, err
		}
		for ; n > 0; n-- {
			if t == TypeListQuicklist2 {
				c, err := s.readCount()
				if err != nil {
					return false, err
				}
				if c == 1 { // a plain node holds one element
					return false, nil
				}
			}
			b, err := stringPrefix(s, emptyPrefix)
			if err != nil {
				return false, err
			}
			if t == TypeListQuicklist && !ziplistEmpty(b) || t == TypeListQuicklist2 && !listpackEmpty(b) {
				return false, nil
			}
		}
		return true, nil
	}
	// An empty intset or zipmap fails Redis's integrity check: Redis refuses
	// to load the RDB, and a target refuses its RESTORE, so it is reported,
	// not skipped.
	return false, nil
}

// ziplistEmpty: a ziplist's entries start after its 10-byte header; the end
// byte 0xff right there means none.
func ziplistEmpty(b []byte) bool { return len(b) >= 11 && b[10] == 0xff }

// listpackEmpty: a listpack's entries start after its 6-byte header.
func listpackEmpty(b []byte) bool { return len(b) >= 7 && b[6] == 0xff }

// stringPrefix reads an RDB string whole (consuming it) and returns at most
// its first n decoded bytes, without decompressing more of an LZF string
// than those bytes need.
func stringPrefix(s *src, n int) ([]byte, error) {
	v, enc, err := s.readLen()
	if err != nil {
		return nil, err
	}
	if !enc {
		m := min(v, uint64(n))
		b, err := s.appendN(make([]byte, 0, m), m)
		if err != nil {
			return nil, err
		}
		return b, s.skip(v - m)
	}
	if v != 3 { // an integer: no compact encoding
		return s.readEncoded(nil, v, uint64(n))
	}
	clen, err := s.readCount()
	if err != nil {
		return nil, err
	}
	if _, err := s.readCount(); err != nil {
		return nil, err
	}
	// n output bytes come from at most 3n input bytes (a literal run costs
	// one control byte per 32 bytes, a back reference at least 3 bytes for 3).
	m := min(clen, uint64(3*n+3))
	comp, err := s.appendN(make([]byte, 0, m), m)
	if err != nil {
		return nil, err
	}
	if err := s.skip(clen - m); err != nil {
		return nil, err
	}
	return lzfPrefix(comp, n), nil
}

// lzfPrefix decompresses the first n bytes of LZF data (fewer if the data
// ends or is damaged).
func lzfPrefix(in []byte, n int) []byte {
	out := make([]byte, 0, n)
	i := 0
	for i < len(in) && len(out) < n {
		ctrl := int(in[i])
		i++
		if ctrl < 32 { // literal run of ctrl+1 bytes
			l := min(ctrl+1, len(in)-i)
			out = append(out, in[i:i+l]...)
			i += l
			continue
		}
		l := ctrl >> 5
		if l == 7 {
			if i >= len(in) {
				break
			}
			l += int(in[i])
			i++
		}
		if i >= len(in) {
			break
		}
		ref := len(out) - (ctrl&0x1f)<<8 - 1 - int(in[i])
		i++
		if ref < 0 {
			break
		}
		for l += 2; l > 0 && len(out) < n; l-- {
			out = append(out, out[ref])
			ref++
		}
	}
	return out[:min(len(out), n)]
}
