// Strings, lists, sets, sorted sets and hashes: read in pages, compared
// whole when small, looked up on the target page by page when not.

package verify

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

func (e *engine) cmpString(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if e.o.Mode == ModeKeys {
		if sl != dl {
			return fmt.Sprintf("length %d != %d bytes", sl, dl), nil
		}
		return "", nil
	}
	a, b := text(kc.sh[1]), text(kc.dh[1])
	if sl != dl {
		if sl <= shortLen && dl <= shortLen && int64(len(a)) == sl && int64(len(b)) == dl {
			return fmt.Sprintf("%s != %s", quote(a), quote(b)), nil
		}
		return fmt.Sprintf("length %d != %d bytes", sl, dl), nil
	}
	off := int64(0)
	for {
		if a != b {
			if sl <= shortLen {
				return fmt.Sprintf("%s != %s", quote(a), quote(b)), nil
			}
			i := firstDiff(a, b)
			return fmt.Sprintf("differs at byte %d of %d: %s != %s", off+int64(i), sl, excerpt(a, i), excerpt(b, i)), nil
		}
		off += int64(len(a))
		if off >= sl || len(a) == 0 {
			return "", nil
		}
		sr, dr, err := e.pair(ctx, sc, dc, one("GETRANGE", kc.key, off, off+strChunk-1))
		if err != nil {
			return soft(err)
		}
		a, b = text(sr[0]), text(dr[0])
	}
}

func (e *engine) cmpList(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if sl != dl {
		return fmt.Sprintf("length %d != %d elements", sl, dl), nil
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	sp, dp := list(kc.sh[1]), list(kc.dh[1])
	start := int64(0)
	for {
		for i := 0; i < min(len(sp), len(dp)); i++ {
			if a, b := str(sp[i]), str(dp[i]); a != b {
				return fmt.Sprintf("element %d: %s != %s", start+int64(i), quote(a), quote(b)), nil
			}
		}
		if len(sp) != len(dp) {
			return "changed while being read (list length)", nil
		}
		start += int64(len(sp))
		if start >= sl || len(sp) == 0 {
			return "", nil
		}
		sr, dr, err := e.pair(ctx, sc, dc, one("LRANGE", kc.key, start, start+pageSize-1))
		if err != nil {
			return soft(err)
		}
		sp, dp = list(sr[0]), list(dr[0])
	}
}

var (
	scanCmd = map[string]string{"set": "SSCAN", "zset": "ZSCAN", "hash": "HSCAN"}
	noun    = map[string]string{"set": "member", "zset": "member", "hash": "field"}
)

// cmpScanned compares a set, zset or hash. When both sides fit in their
// first SCAN page the two are compared whole; otherwise the source is read
// page by page and each page looked up on the target: with equal
// cardinalities, source ⊆ target means equal.
func (e *engine) cmpScanned(ctx context.Context, kc *keyCheck, sc, dc redis.UniversalClient) (string, error) {
	typ := kc.typ
	sl, dl := intOf(kc.sh[0]), intOf(kc.dh[0])
	if sl != dl {
		return fmt.Sprintf("%d != %d %ss", sl, dl, noun[typ]), nil
	}
	if e.o.Mode == ModeKeys {
		return "", nil
	}
	scur, sitems := scanReply(kc.sh[1].Val())
	dcur, ditems := scanReply(kc.dh[1].Val())
	if scur == "0" && dcur == "0" {
		return diffMaps(typ, toMap(typ, sitems), toMap(typ, ditems)), nil
	}
	cur, items := scur, sitems
	for {
		if d, err := e.lookup(ctx, dc, typ, kc.key, items); d != "" || err != nil {
			return d, err
		}
		if cur == "0" {
			return "", nil
		}
		v, err := e.src.do(ctx, sc, scanCmd[typ], kc.key, cur, "COUNT", pageSize)
		if err != nil {
			return soft(wrapReply(err))
		}
		cur, items = scanReply(v)
	}
}

func wrapReply(err error) error {
	if isReplyErr(err) {
		return &replyErr{err}
	}
	return err
}

// lookup checks that the members (with their values) of one source page are
// on the target.
func (e *engine) lookup(ctx context.Context, dc redis.UniversalClient, typ, key string, items []any) (string, error) {
	var names, vals []string
	if typ == "set" {
		for _, it := range items {
			names = append(names, str(it))
		}
	} else {
		for i := 0; i+1 < len(items); i += 2 {
			names = append(names, str(items[i]))
			vals = append(vals, str(items[i+1]))
		}
	}
	if len(names) == 0 {
		return "", nil
	}
	got, err := e.targetValues(ctx, dc, typ, key, names)
	if err != nil {
		return soft(wrapReply(err))
	}
	for i, n := range names {
		g := got[i]
		switch {
		case g == nil:
			return fmt.Sprintf("%s %s missing on target", noun[typ], quote(n)), nil
		case typ == "hash" && *g != vals[i]:
			return fmt.Sprintf("field %s: %s != %s", quote(n), quote(vals[i]), quote(*g)), nil
		case typ == "zset" && !sameScore(vals[i], *g):
			return fmt.Sprintf("member %s: score %s != %s", quote(n), fmtScore(vals[i]), fmtScore(*g)), nil
		}
	}
	return "", nil
}

// targetValues returns, for each name, its value on the target (set: "")
// or nil when it is not there.
func (e *engine) targetValues(ctx context.Context, dc redis.UniversalClient, typ, key string, names []string) ([]*string, error) {
	out := make([]*string, len(names))
	args := make([]any, 0, len(names)+2)
	multi := map[string]string{"hash": "HMGET", "set": "SMISMEMBER", "zset": "ZMSCORE"}[typ]
	if typ == "hash" || !e.dst.noMulti.Load() {
		args = append(args, multi, key)
		for _, n := range names {
			args = append(args, n)
		}
		v, err := e.dst.do(ctx, dc, args...)
		if err == nil {
			for i, x := range list1(v) {
				if i >= len(out) {
					break
				}
				switch {
				case x == nil:
				case typ == "set":
					if n, _ := x.(int64); n == 1 {
						out[i] = new(string)
					}
				default:
					s := str(x)
					out[i] = &s
				}
			}
			return out, nil
		}
		if !strings.Contains(strings.ToLower(err.Error()), "unknown command") {
			return nil, err
		}
		e.dst.noMulti.Store(true) // Redis < 6.2
	}
	p := dc.Pipeline()
	cmds := make([]*redis.Cmd, len(names))
	for i, n := range names {
		if typ == "set" {
			cmds[i] = p.Do(ctx, "SISMEMBER", key, n)
		} else {
			cmds[i] = p.Do(ctx, "ZSCORE", key, n)
		}
	}
	if err := e.dst.exec(ctx, p); err != nil {
		return nil, err
	}
	for i, c := range cmds {
		if err := c.Err(); err == redis.Nil {
			continue
		} else if err != nil {
			return nil, err
		}
		if typ == "set" {
			if intOf(c) == 1 {
				out[i] = new(string)
			}
			continue
		}
		s := text(c)
		out[i] = &s
	}
	return out, nil
}

func sameScore(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := strconv.ParseFloat(a, 64)
	y, err2 := strconv.ParseFloat(b, 64)
	return err1 == nil && err2 == nil && (x == y || math.IsNaN(x) && math.IsNaN(y))
}

// fmtScore shows a score as the shortest decimal that reads back the same.
func fmtScore(s string) string {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

func toMap(typ string, items []any) map[string]string {
	m := map[string]string{}
	if typ == "set" {
		for _, it := range items {
			m[str(it)] = ""
		}
		return m
	}
	for i := 0; i+1 < len(items); i += 2 {
		m[str(items[i])] = str(items[i+1])
	}
	return m
}

// diffMaps describes the first difference between two whole sets, zsets or
// hashes (names in order), or "".
func diffMaps(typ string, s, d map[string]string) string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		dv, ok := d[n]
		sv := s[n]
		switch {
		case !ok:
			return fmt.Sprintf("%s %s missing on target", noun[typ], quote(n))
		case typ == "hash" && sv != dv:
			return fmt.Sprintf("field %s: %s != %s", quote(n), quote(sv), quote(dv))
		case typ == "zset" && !sameScore(sv, dv):
			return fmt.Sprintf("member %s: score %s != %s", quote(n), fmtScore(sv), fmtScore(dv))
		}
	}
	var extra []string
	for n := range d {
		if _, ok := s[n]; !ok {
			extra = append(extra, n)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Sprintf("%s %s not on source", noun[typ], quote(extra[0]))
	}
	return ""
}
