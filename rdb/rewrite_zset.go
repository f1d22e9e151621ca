// Rewriting sorted sets as ZADD, scores in the text Redis itself writes.

package rdb

import (
	"math"
	"strconv"
)

// formatScore formats a score so that Redis parses back the same double.
func appendScore(dst []byte, f float64) ([]byte, error) {
	switch {
	case math.IsNaN(f):
		return dst, corrupt("NaN score")
	case math.IsInf(f, 1):
		return append(dst, "inf"...), nil
	case math.IsInf(f, -1):
		return append(dst, "-inf"...), nil
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64), nil
}

func (w *rewriter) zsetPlain(t byte) error {
	w.begin(bZADD)
	s := w.s
	n, err := w.count()
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		w.scratch, err = s.readString(w.scratch[:0], maxStringLen)
		if err != nil {
			return err
		}
		var score float64
		if t == TypeZSet2 {
			u, err := s.readU64()
			if err != nil {
				return err
			}
			score = math.Float64frombits(u)
		} else {
			l, err := s.readByte()
			if err != nil {
				return err
			}
			switch l {
			case 253:
				score = math.NaN()
			case 254:
				score = math.Inf(1)
			case 255:
				score = math.Inf(-1)
			default:
				p, err := s.appendN(w.num[:0], uint64(l))
				if err != nil {
					return err
				}
				score, err = strconv.ParseFloat(string(p), 64)
				if err != nil && !isRangeErr(err) {
					return corrupt("bad zset score %q", p)
				}
			}
		}
		if w.data, err = appendScore(w.data, score); err != nil {
			return err
		}
		w.endArg()
		w.addBytes(w.scratch)
		if err := w.endElem(); err != nil {
			return err
		}
	}
	return w.flush()
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// zsetPairs adds member/score pairs of a ziplist or listpack as ZADD args.
func (w *rewriter) zsetPairs(b []byte, lp bool) error {
	var next func() (elem, bool, error)
	if lp {
		it, err := newLP(b)
		if err != nil {
			return err
		}
		next = it.next
	} else {
		it, err := newZL(b)
		if err != nil {
			return err
		}
		next = it.next
	}
	for {
		m, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		sc, ok, err := next()
		if err != nil {
			return err
		}
		if !ok {
			return corrupt("sorted set member without score")
		}
		if sc.isInt {
			w.addElem(sc)
		} else {
			f, err := strconv.ParseFloat(string(sc.s), 64)
			if err != nil && !isRangeErr(err) {
				return corrupt("bad zset score %q", sc.s)
			}
			if w.data, err = appendScore(w.data, f); err != nil {
				return err
			}
			w.endArg()
		}
		w.addElem(m)
		if err := w.endElem(); err != nil {
			return err
		}
	}
}
