// Rewriting hashes whose fields carry TTLs (Redis 7.4+ encodings) as
// HSET and HPEXPIREAT.

package rdb

import "math"

type ttlField struct {
	idx int // index into ends of the field
	ms  int64
}

// hashMetadata handles hashes with field TTLs in dict form (types 22, 24).
func (w *rewriter) hashMetadata(t byte) error {
	s := w.s
	var minExpire uint64
	if t == TypeHashMetadata {
		v, err := s.readU64()
		if err != nil {
			return err
		}
		minExpire = v
	}
	w.begin(bHSET)
	n, err := w.count()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		ttl, err := w.count()
		if err != nil {
			return err
		}
		exp := ttl
		if t == TypeHashMetadata && ttl != 0 {
			exp = minExpire + (ttl - 1)
			if exp < minExpire {
				return corrupt("hash field expire time out of range")
			}
		}
		if exp > math.MaxInt64 {
			return corrupt("hash field expire time %d out of range", exp)
		}
		if exp != 0 && int64(exp) <= w.now {
			if err := s.skipString(); err != nil {
				return err
			}
			if err := s.skipString(); err != nil {
				return err
			}
			continue
		}
		if err := w.addString(); err != nil {
			return err
		}
		if exp != 0 {
			w.ttls = append(w.ttls, ttlField{idx: len(w.ends) - 1, ms: int64(exp)})
		}
		if err := w.addString(); err != nil {
			return err
		}
		if err := w.endElem(); err != nil {
			return err
		}
	}
	return w.flush()
}

// hashListpackEx handles listpack hashes with field TTLs (types 23, 25):
// field, value, expire-ms (0 = none) triples.
func (w *rewriter) hashListpackEx(t byte) error {
	if t == TypeHashListpackEx {
		if _, err := w.s.readU64(); err != nil { // min expire, informational
			return err
		}
	}
	w.begin(bHSET)
	b, err := w.readBlob()
	if err != nil {
		return err
	}
	it, err := newLP(b)
	if err != nil {
		return err
	}
	for {
		f, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		v, ok1, err1 := it.next()
		x, ok2, err2 := it.next()
		if err1 != nil || err2 != nil || !ok1 || !ok2 {
			return corrupt("hash listpack with TTLs is not made of field/value/ttl triples")
		}
		exp, ok := x.int()
		if !ok || exp < 0 {
			return corrupt("bad hash field TTL")
		}
		if exp != 0 && exp <= w.now {
			continue
		}
		w.addElem(f)
		if exp != 0 {
			w.ttls = append(w.ttls, ttlField{idx: len(w.ends) - 1, ms: exp})
		}
		w.addElem(v)
		if err := w.endElem(); err != nil {
			return err
		}
	}
	return w.flush()
}
